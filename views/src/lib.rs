//! What closeloop shows, apart from what it knows: the survey pages, every mail and SMS, the
//! dashboard and workspace pages, their charts, previews and the CSV export. Each page or message
//! renders from a typed view model through the templates in `templates/` (compiled in, so the
//! Worker needs no filesystem). Builds for wasm32 like core.

pub mod accounts;
pub mod audit;
pub mod charts;
pub mod chat;
pub mod dashboard;
pub mod export;
pub mod people;
pub mod preview;
pub mod render;
pub mod workspace;
