//! The complete store of the crate docs ("Writing a store"), run through
//! the whole store suite: the example users copy is proven, not only
//! compiled.

include!("../src/doc/map_store.rs");
