//! The demo contract: what every adapter's demo app serves, byte for byte.
//! The [adapter suite](crate::adapter) checks the routes and the session
//! cookie over HTTP, and the [start-up suite](crate::startup) the
//! environment variables. This is the project's own text of it, shipped
//! with the suites so that an outside author has it at hand.
//!
//! Where the text is silent, the suites read it as follows:
//!
//! - **A JSON body comes with a JSON `Content-Type`** (`application/json`,
//!   with parameters or not, or `application/*+json`). A good body sent as
//!   `text/plain`, as a form, or with no `Content-Type` at all is a body
//!   "not a JSON object" for the route: 400 `{"error":"Malformed JSON
//!   body"}`, as `express.json()` leaves such a body unread. Those are the
//!   requests a page of another origin may send without a preflight.
//!
//! The contract itself:
#![doc = include_str!("../CONTRACT.md")]
