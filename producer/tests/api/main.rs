//! The producer's integration tests: the real server on port 0 sending to a real
//! test receiver (and, end to end, to the real consumer with Redis).

mod api;
mod cluster;
mod container;
mod credentials;
mod cross_site;
mod deliveries;
mod delivery;
mod durable;
mod durable_bounds;
mod end_to_end;
mod faults;
mod headless;
mod helpers;
mod limits;
mod receiver;
mod shutdown;
mod stop;
mod stream;
mod tls;
