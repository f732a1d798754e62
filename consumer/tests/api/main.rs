//! The consumer's integration tests: the real server on port 0, a private
//! redis-server per test, real HTTP and WebSocket clients.

mod browsers;
mod capacity;
mod cluster;
mod container;
mod dashboard;
mod dedupe;
mod fanout;
mod fault_injection;
mod faults;
mod helpers;
mod hostile;
mod hosts;
mod pacing;
mod prometheus;
mod raw;
mod recent;
mod resilience;
mod tls;
mod webhook;
