//! closeloop's pure core: domain types, NPS maths, rules and the ports. What the product shows
//! (pages, mail, the dashboard, charts, the export) is in `closeloop-views`.
//! No I/O, no runtime: it builds for wasm32 and native alike.

pub mod accounts;
pub mod audit;
pub mod campaign;
pub mod campaign_form;
pub mod changelog;
pub mod changes;
pub mod clean;
pub mod counters;
pub mod gsm;
pub mod import;
pub mod launch;
pub mod lifecycle;
pub mod model;
pub mod nps;
pub mod ports;
pub mod privacy;
pub mod report;
pub mod rules;
pub mod survey;
pub mod time;
pub mod updates;
pub mod webhooks;

#[cfg(feature = "contract")]
pub mod contract;
#[cfg(any(test, feature = "contract"))]
pub mod fixtures;

pub use campaign::{Campaign, CampaignId};
pub use model::*;
pub use nps::{Group, Score, Tally};
pub use time::Timestamp;
