//! blockstore
