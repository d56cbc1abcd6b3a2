//! Streaming log template mining, in the spirit of Drain.
//!
//! A message is tokenised on whitespace and each token that carries a digit
//! is masked as a variable (`blk_-123` -> `<*>`, `sku=42` -> `sku=<*>`), so
//! numbers, ids, addresses and sizes never split a template while words stay
//! literal. Messages are grouped by token count and first token (the fixed
//! depth of Drain's prefix tree); inside a group a message joins the template
//! whose literal tokens it matches best when at least
//! [`MinerConfig::similarity`] of its tokens agree, and the template widens
//! (differing positions become `<*>`). When widening makes a template cover
//! another one of its group, the two merge, the older id surviving.
//!
//! Ids are derived from a stable hash of the template's first form and kept
//! when it widens, so they are the same across runs and restarts
//! ([`TemplateMiner::save_state`] / [`TemplateMiner::load_state`]). Memory is
//! bounded: past [`MinerConfig::max_templates`] the rarest tenth of the
//! templates is evicted and counted in [`MinerStats::evicted`].

use crate::error::{Error, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The variable marker, as in loghub's ground truth.
pub const WILDCARD: &str = "<*>";

/// Miner settings. One set of defaults for every log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    /// Share of literal tokens that must agree to join a template (strictly more).
    pub similarity: f64,
    /// Most templates kept; the rarest are evicted beyond it.
    pub max_templates: usize,
    /// Extra regular expressions whose matches are variables.
    pub masks: Vec<String>,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            similarity: 0.5,
            max_templates: 10_000,
            masks: Vec::new(),
        }
    }
}

/// One template.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cluster {
    id: String,
    tokens: Vec<String>,
    count: u64,
    /// Set when merged into another cluster (index of the survivor).
    merged_into: Option<usize>,
    /// For each position: the literal words seen there, while they are few.
    /// A `<*>` position that only ever held two or three words is an enum
    /// ("Failed password" / "Failed none"), not a variable; see
    /// [`TemplateMiner::refine`].
    #[serde(default)]
    values: Vec<Values>,
}

/// The distinct literal tokens seen at one position, up to [`MAX_VALUES`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Values {
    /// (token, count), or `None` once the position proved variable.
    few: Option<Vec<(String, u64)>>,
}

/// Distinct words a position may hold and still count as constant.
const MAX_VALUES: usize = 3;

impl Values {
    fn literal(tok: &str, n: u64) -> Values {
        if tok == WILDCARD || tok.contains(WILDCARD) {
            Values { few: None }
        } else {
            Values {
                few: Some(vec![(tok.to_string(), n)]),
            }
        }
    }

    fn add(&mut self, tok: &str, n: u64) {
        if tok.contains(WILDCARD) {
            self.few = None;
            return;
        }
        let Some(few) = &mut self.few else { return };
        if let Some((_, c)) = few.iter_mut().find(|(t, _)| t == tok) {
            *c += n;
        } else if few.len() < MAX_VALUES {
            few.push((tok.to_string(), n));
        } else {
            self.few = None;
        }
    }

    fn merge(&mut self, other: &Values) {
        match &other.few {
            None => self.few = None,
            Some(v) => {
                for (t, n) in v {
                    self.add(t, *n);
                }
            }
        }
    }
}

/// What [`TemplateMiner::add`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMatch {
    /// Stable id.
    pub id: String,
    /// Index of the cluster (resolve later with [`TemplateMiner::resolve`]).
    pub index: usize,
    /// Whether this message created the template.
    pub is_new: bool,
}

/// A template as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateInfo {
    /// Stable id.
    pub id: String,
    /// Text with `<*>` for variables.
    pub template: String,
    /// Messages that matched it.
    pub count: u64,
}

/// Counters for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MinerStats {
    /// Live templates.
    pub templates: usize,
    /// Templates evicted by the cap.
    pub evicted: u64,
    /// Templates merged into another.
    pub merged: u64,
    /// The cap.
    pub max_templates: usize,
}

/// The miner. See the module docs.
pub struct TemplateMiner {
    cfg: MinerConfig,
    masks: Vec<Regex>,
    clusters: Vec<Cluster>,
    /// (token count, first token) -> live cluster indexes.
    groups: HashMap<(usize, String), Vec<usize>>,
    ids: HashMap<String, usize>,
    stats: MinerStats,
}

#[derive(Serialize, Deserialize)]
struct State {
    version: u32,
    config: MinerConfig,
    clusters: Vec<Cluster>,
    stats: MinerStats,
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Mask one token: variables become `<*>`, keeping a `key=` prefix and
/// surrounding punctuation so `sku=42,` reads `sku=<*>,`.
fn mask_token(tok: &str) -> String {
    if is_date_word(tok) {
        return WILDCARD.to_string();
    }
    if !tok.bytes().any(|b| b.is_ascii_digit())
        || tok.contains(WILDCARD) && tok.len() == WILDCARD.len()
    {
        return tok.to_string();
    }
    if let Some((k, v)) = tok.split_once('=') {
        if !k.is_empty() && !k.bytes().any(|b| b.is_ascii_digit()) {
            return format!("{k}={}", mask_token(v));
        }
    }
    let lead = tok.len() - tok.trim_start_matches(['(', '[', '{', '"', '\'']).len();
    let trail = tok.len()
        - tok
            .trim_end_matches([')', ']', '}', '"', '\'', ',', ';', '.', ':'])
            .len();
    if lead + trail < tok.len() {
        format!("{}{WILDCARD}{}", &tok[..lead], &tok[tok.len() - trail..])
    } else {
        WILDCARD.to_string()
    }
}

/// The wider of two differing tokens: `user=root` and `user=guest` give
/// `user=<*>` (a key keeps its name, its value is the variable), anything
/// else `<*>`.
fn widen(a: &str, b: &str) -> String {
    if let (Some((ka, _)), Some((kb, _))) = (a.split_once('='), b.split_once('=')) {
        if ka == kb && !ka.is_empty() && !ka.contains(WILDCARD) {
            return format!("{ka}={WILDCARD}");
        }
    }
    WILDCARD.to_string()
}

/// Month and weekday names: the words of a date printed inside a message
/// (`at Sat Jul  9 22:53:22 2005`), variables like the numbers beside them.
fn is_date_word(tok: &str) -> bool {
    const WORDS: [&str; 19] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Mon",
        "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
    ];
    WORDS.contains(&tok)
}

impl TemplateMiner {
    /// A miner; fails only when a mask does not compile.
    pub fn new(cfg: MinerConfig) -> Result<Self> {
        let masks = cfg
            .masks
            .iter()
            .map(|m| {
                Regex::new(m).map_err(|source| Error::InvalidMask {
                    pattern: m.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let max = cfg.max_templates.max(1);
        Ok(TemplateMiner {
            cfg,
            masks,
            clusters: Vec::new(),
            groups: HashMap::new(),
            ids: HashMap::new(),
            stats: MinerStats {
                max_templates: max,
                ..Default::default()
            },
        })
    }

    /// Tokens of a message after masking.
    pub fn tokens(&self, message: &str) -> Vec<String> {
        let mut text = std::borrow::Cow::Borrowed(message);
        for m in &self.masks {
            if m.is_match(&text) {
                text = std::borrow::Cow::Owned(m.replace_all(&text, WILDCARD).into_owned());
            }
        }
        text.split_whitespace().map(mask_token).collect()
    }

    /// Match a message to a template, creating or widening one.
    pub fn add(&mut self, message: &str) -> TemplateMatch {
        let tokens = self.tokens(message);
        let key = (tokens.len(), tokens.first().cloned().unwrap_or_default());
        let mut best: Option<(usize, f64, usize)> = None;
        if let Some(members) = self.groups.get(&key) {
            for &ci in members {
                let c = &self.clusters[ci];
                let mut same = 0;
                let mut params = 0;
                // A position agrees when the tokens are equal, variables
                // included: a masked number meets the template's `<*>`. A
                // template variable facing a literal word does not count, so
                // widened templates do not swallow unrelated messages.
                for (a, b) in c.tokens.iter().zip(&tokens) {
                    if a == b {
                        same += 1;
                    }
                    if a == WILDCARD {
                        params += 1;
                    }
                }
                let sim = if tokens.is_empty() {
                    1.0
                } else {
                    same as f64 / tokens.len() as f64
                };
                if best.is_none_or(|(_, s, p)| sim > s || (sim == s && params > p)) {
                    best = Some((ci, sim, params));
                }
            }
        }
        if let Some((ci, sim, _)) = best {
            // Strictly more than the threshold: two-word messages that
            // differ in a word ("VM Started" / "VM Paused") stay apart.
            if sim > self.cfg.similarity {
                let mut widened = false;
                let c = &mut self.clusters[ci];
                c.count += 1;
                for ((a, b), v) in c.tokens.iter_mut().zip(&tokens).zip(c.values.iter_mut()) {
                    if a != b && a != WILDCARD {
                        *a = widen(a, b);
                        widened = true;
                    }
                    v.add(b, 1);
                }
                let ci = if widened {
                    self.merge_covered(ci, &key)
                } else {
                    ci
                };
                return TemplateMatch {
                    id: self.clusters[ci].id.clone(),
                    index: ci,
                    is_new: false,
                };
            }
        }
        let mut id = format!("T{:012x}", fnv(&tokens.join(" ")) & 0xffff_ffff_ffff);
        while self.ids.contains_key(&id) {
            id = format!("T{:012x}", fnv(&id) & 0xffff_ffff_ffff);
        }
        let ci = self.clusters.len();
        let values = tokens.iter().map(|t| Values::literal(t, 1)).collect();
        self.clusters.push(Cluster {
            id: id.clone(),
            tokens,
            count: 1,
            merged_into: None,
            values,
        });
        self.ids.insert(id.clone(), ci);
        self.groups.entry(key).or_default().push(ci);
        self.stats.templates += 1;
        if self.stats.templates > self.stats.max_templates {
            self.evict();
        }
        TemplateMatch {
            id,
            index: ci,
            is_new: true,
        }
    }

    /// After `ci` widened, fold into it every template of its group that it
    /// now covers (same literal tokens wherever `ci` has a literal).
    fn merge_covered(&mut self, ci: usize, key: &(usize, String)) -> usize {
        let Some(members) = self.groups.get(key).cloned() else {
            return ci;
        };
        let mut survivor = ci;
        for other in members {
            if other == survivor || self.clusters[other].merged_into.is_some() {
                continue;
            }
            let covers = self.clusters[survivor]
                .tokens
                .iter()
                .zip(&self.clusters[other].tokens)
                .all(|(a, b)| a == WILDCARD || a == b);
            if covers {
                // The older template keeps its id.
                let (keep, gone) = if other < survivor {
                    (other, survivor)
                } else {
                    (survivor, other)
                };
                let tokens = self.clusters[survivor].tokens.clone();
                let count = self.clusters[gone].count;
                let gone_values = std::mem::take(&mut self.clusters[gone].values);
                let keep_c = &mut self.clusters[keep];
                keep_c.tokens = tokens;
                keep_c.count += count;
                for (v, g) in keep_c.values.iter_mut().zip(&gone_values) {
                    v.merge(g);
                }
                self.clusters[gone].merged_into = Some(keep);
                if let Some(g) = self.groups.get_mut(key) {
                    g.retain(|&x| x != gone);
                }
                self.stats.templates -= 1;
                self.stats.merged += 1;
                survivor = keep;
            }
        }
        survivor
    }

    fn evict(&mut self) {
        let mut live: Vec<(u64, usize)> = self
            .groups
            .values()
            .flatten()
            .map(|&ci| (self.clusters[ci].count, ci))
            .collect();
        live.sort_unstable();
        let n = (self.stats.max_templates / 10).max(1);
        let gone: std::collections::HashSet<usize> =
            live.iter().take(n).map(|&(_, ci)| ci).collect();
        for g in self.groups.values_mut() {
            g.retain(|ci| !gone.contains(ci));
        }
        self.groups.retain(|_, g| !g.is_empty());
        for &ci in &gone {
            let c = &mut self.clusters[ci];
            self.ids.remove(&c.id);
            // Keep the slot (indexes stay valid) but free the tokens.
            c.tokens = Vec::new();
            c.merged_into = Some(usize::MAX);
        }
        self.stats.templates -= gone.len();
        self.stats.evicted += gone.len() as u64;
        self.compact_if_sparse();
    }

    /// Drop evicted slots once they dominate, so memory follows the cap.
    fn compact_if_sparse(&mut self) {
        let dead = self
            .clusters
            .iter()
            .filter(|c| c.merged_into == Some(usize::MAX))
            .count();
        if dead < self.clusters.len() / 2 {
            return;
        }
        let mut remap = vec![usize::MAX; self.clusters.len()];
        let mut kept = Vec::with_capacity(self.clusters.len() - dead);
        for (i, c) in self.clusters.iter().enumerate() {
            if c.merged_into != Some(usize::MAX) {
                remap[i] = kept.len();
                kept.push(c.clone());
            }
        }
        for c in &mut kept {
            c.merged_into = c
                .merged_into
                .map(|m| if m == usize::MAX { m } else { remap[m] });
        }
        self.clusters = kept;
        self.rebuild_index();
    }

    fn rebuild_index(&mut self) {
        self.groups.clear();
        self.ids.clear();
        for (i, c) in self.clusters.iter().enumerate() {
            if c.merged_into.is_none() {
                self.groups
                    .entry((
                        c.tokens.len(),
                        c.tokens.first().cloned().unwrap_or_default(),
                    ))
                    .or_default()
                    .push(i);
            }
            if c.merged_into != Some(usize::MAX) {
                self.ids.insert(c.id.clone(), i);
            }
        }
    }

    /// Follow merges from a cluster index to the live template (None if
    /// evicted). Indexes from [`TemplateMatch::index`] stay valid until the
    /// next compaction, which only happens under eviction.
    pub fn resolve(&self, mut index: usize) -> Option<TemplateInfo> {
        loop {
            let c = self.clusters.get(index)?;
            match c.merged_into {
                None => {
                    return Some(TemplateInfo {
                        id: c.id.clone(),
                        template: c.tokens.join(" "),
                        count: c.count,
                    })
                }
                Some(usize::MAX) => return None,
                Some(next) => index = next,
            }
        }
    }

    /// The template of one message, refined: a `<*>` position of its
    /// template that only ever held a few distinct words keeps the
    /// message's word. This separates enumerations a similarity threshold
    /// cannot ("Received disconnect ...: Bye Bye" from "...: disconnected by
    /// user") without letting rare words split real variables. The id is the
    /// template's id, suffixed when a position was refined. `tokens` are the
    /// message's tokens from [`TemplateMiner::tokens`].
    pub fn refine(&self, index: usize, tokens: &[String]) -> Option<TemplateInfo> {
        let mut index = index;
        while let Some(next) = self.clusters.get(index)?.merged_into {
            if next == usize::MAX {
                return None;
            }
            index = next;
        }
        let c = &self.clusters[index];
        let mut out = c.tokens.clone();
        let mut refined = false;
        for ((slot, v), tok) in out.iter_mut().zip(&c.values).zip(tokens) {
            if slot == WILDCARD && v.few.as_ref().is_some_and(|f| f.len() > 1) {
                *slot = tok.clone();
                refined = true;
            }
        }
        let template = out.join(" ");
        let id = if refined {
            format!("{}-{:06x}", c.id, fnv(&template) & 0xff_ffff)
        } else {
            c.id.clone()
        };
        Some(TemplateInfo {
            id,
            template,
            count: c.count,
        })
    }

    /// Live templates, in creation order.
    pub fn templates(&self) -> impl Iterator<Item = TemplateInfo> + '_ {
        self.clusters
            .iter()
            .filter(|c| c.merged_into.is_none())
            .map(|c| TemplateInfo {
                id: c.id.clone(),
                template: c.tokens.join(" "),
                count: c.count,
            })
    }

    /// Counters.
    pub fn stats(&self) -> MinerStats {
        self.stats
    }

    /// Serialise the miner's state (JSON) so ids survive a restart.
    pub fn save_state(&self) -> String {
        serde_json::to_string(&State {
            version: 1,
            config: self.cfg.clone(),
            clusters: self.clusters.clone(),
            stats: self.stats,
        })
        .expect("state serialises")
    }

    /// Restore a miner from [`TemplateMiner::save_state`].
    pub fn load_state(text: &str) -> Result<Self> {
        let st: State = serde_json::from_str(text).map_err(|e| Error::State(e.to_string()))?;
        if st.version != 1 {
            return Err(Error::State(format!(
                "unsupported state version {}",
                st.version
            )));
        }
        let mut m = TemplateMiner::new(st.config)?;
        m.clusters = st.clusters;
        m.stats = st.stats;
        m.rebuild_index();
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn miner() -> TemplateMiner {
        TemplateMiner::new(MinerConfig::default()).unwrap()
    }

    #[test]
    fn masking_keeps_words_and_structure() {
        let m = miner();
        for (input, want) in [
            (
                "Received block blk_-1608 of size 91178 from /10.250.10.6",
                "Received block <*> of size <*> from <*>",
            ),
            ("stock level for sku=42, ok", "stock level for sku=<*>, ok"),
            ("took (120ms)", "took (<*>)"),
            ("GET /api/cart HTTP/1.1", "GET /api/cart <*>"),
            ("VM Started", "VM Started"),
        ] {
            assert_eq!(m.tokens(input).join(" "), want, "{input}");
        }
    }

    #[test]
    fn variable_positions_merge_and_meanings_do_not() {
        let mut m = miner();
        let a = m.add("session opened for user alice by root");
        let b = m.add("session opened for user bob by root");
        assert_eq!(a.id, b.id);
        assert_eq!(
            m.resolve(b.index).unwrap().template,
            "session opened for user <*> by root"
        );
        let started = m.add("VM Started");
        let paused = m.add("VM Paused");
        assert_ne!(started.id, paused.id, "different meanings stay apart");
    }

    #[test]
    fn ids_are_stable_across_runs_and_restarts() {
        let lines = [
            "connection from 10.0.0.1 closed",
            "connection from 10.0.0.2 closed",
            "disk full on /var",
        ];
        let run = |m: &mut TemplateMiner| lines.iter().map(|l| m.add(l).id).collect::<Vec<_>>();
        let first = run(&mut miner());
        assert_eq!(first, run(&mut miner()));
        let mut m = miner();
        run(&mut m);
        let mut restored = TemplateMiner::load_state(&m.save_state()).unwrap();
        assert_eq!(run(&mut restored), first);
        assert_eq!(restored.stats().templates, 2);
    }

    #[test]
    fn the_cap_bounds_templates_under_hostile_input() {
        let mut m = TemplateMiner::new(MinerConfig {
            max_templates: 100,
            ..Default::default()
        })
        .unwrap();
        for i in 0..5000 {
            let w: String = format!("{i:x}")
                .chars()
                .map(|c| (b'g' + (c as u8 % 16)) as char)
                .collect();
            m.add(&format!("{w} unique {w}"));
        }
        let s = m.stats();
        assert!(s.templates <= 100, "{s:?}");
        assert!(s.evicted > 0);
        assert!(
            m.clusters.len() <= 200,
            "slots are reclaimed: {}",
            m.clusters.len()
        );
    }

    #[test]
    fn bad_masks_are_named() {
        let e = TemplateMiner::new(MinerConfig {
            masks: vec!["(unclosed".into()],
            ..Default::default()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("(unclosed"), "{e}");
    }
}
