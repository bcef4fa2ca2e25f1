//! The hash maps of planning (addresses, ids and tokens to indexes): std's `HashMap` with
//! foldhash's fast hasher instead of SipHash. Their keys come from the user's own code and the
//! provider's state, not from an adversary, so SipHash's resistance to crafted collisions buys
//! nothing here, and it cost a twentieth of a 10,000-resource no-op plan. A fixed seed: no map's
//! iteration order reaches a plan (every output is sorted), and profiles repeat exactly.

/// `std::collections::HashMap` with foldhash's fast hasher and a fixed seed.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;
