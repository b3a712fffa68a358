//! kiln: build conda packages from v1 recipes.
//!
//! Data flows one way through the modules:
//! [`variants`] (variant files → configuration) and [`recipe`] (text → typed
//! outputs, once per variant combination) → [`plan`] (the matrix → used
//! variants, hashes, build strings, build order) → [`execute`] using [`build`] (directories,
//! sources, scripts), [`environment`] (channels, solving, installing,
//! activation, run exports) and [`staging`] (build once, cache, restore) → [`package`]
//! (prefix → `.conda`/`.tar.bz2`) → [`channel`] (indexed output directory).
//! [`preflight`] checks the whole plan before the first script runs.
//! [`lock`], [`disk`], [`redact`] and [`net`] are mechanisms every layer may use
//! (locks, crash-safe writes, secrets, the HTTP client). [`cli`], [`commands`] and the subcommands
//! ([`build_command`] with [`recipe_set`], [`test_command`], [`package_command`]) sit on top.

pub mod build;
pub mod build_command;
pub mod channel;
pub mod cli;
pub mod commands;
pub mod config;
pub mod debug_command;
pub mod dependencies;
pub mod diagnostics;
pub mod disk;
pub mod environment;
pub mod execute;
pub mod hash;
pub mod lock;
pub mod net;
pub mod package;
pub mod package_command;
pub mod patch_command;
pub mod plan;
pub mod platform;
pub mod preflight;
pub mod publish;
pub mod recipe;
pub mod recipe_set;
pub mod redact;
pub mod rendered;
pub mod staging;
pub mod syntax;
pub mod test_command;
pub mod testing;
pub mod ui;
pub mod variants;
