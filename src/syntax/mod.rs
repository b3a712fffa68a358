//! The bottom layer shared by recipes and variant files: `${{ }}`
//! expression evaluation ([`jinja`]), YAML with spans and its rendering
//! ([`yaml`], [`node`]), the pin functions' data ([`pin`]) and the variant
//! value type ([`variant`]). It imports nothing from the layers above.

pub mod deferred;
pub mod jinja;
pub mod node;
pub mod pin;
pub mod variant;
pub mod yaml;
