//! The node agent (skeleton: see issue 11).
