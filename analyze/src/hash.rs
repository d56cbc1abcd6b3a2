//! Hash maps keyed by what the input says (services, series, template and
//! session ids).
//!
//! FxHash would be as fast but is unkeyed: keys that collide can be
//! computed offline, and a stream of crafted log lines would turn every
//! lookup of these maps into a scan. foldhash is about as fast on short keys
//! and takes a random seed per process, so collisions cannot be prepared.
//! Nothing here may depend on the maps' iteration order (outputs are sorted
//! or keyed), which the replay determinism test checks across processes.

/// A map with a per-process random seed.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// A set with a per-process random seed.
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
