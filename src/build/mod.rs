//! Executing a build: directories, sources, environment and script.

pub mod dirs;
pub mod env;
pub mod script;
pub mod sources;
