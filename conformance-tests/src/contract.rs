//! The demo contract: what every adapter's demo app serves, byte for byte.
//! The [adapter suite](crate::adapter) checks the routes and the session
//! cookie over HTTP, and the [start-up suite](crate::startup) the
//! environment variables. This is the project's own text of it, shipped
//! with the suites so that an outside author has it at hand.
#![doc = include_str!("../CONTRACT.md")]
