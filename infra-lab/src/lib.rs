//! The cluster lab (skeleton: see issue 11).
