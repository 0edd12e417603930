//! LeadsRefer's one library: the domain, the ports and their adapters, the route handlers and
//! the jobs. Lambda functions (`functions/*`) and the local runner (`infra/`) only wire it.
//!
//! Data flows one way: HTTP request → route handler ([`routes`]: parse, authenticate,
//! authorise) → service ([`tracking`]) → repositories ([`store`]) → ports ([`ports`]).

pub mod accounts;
pub mod ach_returns;
pub mod adapters;
pub mod app;
pub mod call_simulator;
pub mod caller;
pub mod calls;
pub mod contract;
pub mod csv;
pub mod dispatch;
pub mod domain;
pub mod geo;
pub mod http;
pub mod jobs;
pub mod lifecycle;
pub mod notices;
pub mod outbound;
pub mod payouts;
pub mod ports;
pub mod privacy;
pub mod reports;
pub mod retention;
pub mod routes;
pub mod runtime;
pub mod secret;
pub mod seed;
pub mod store;
pub mod tax;
pub mod tax_forms;
pub mod tracking;
pub mod web;

pub use app::App;
