//! Streaming log template mining, in the spirit of Drain, with the
//! decisions Brain and ByteBrain take from the data where Drain has fixed
//! rules.
//!
//! A message is tokenised on whitespace and each token that carries a digit
//! is masked as a variable (`blk_-123` -> `<*>`, `sku=42` -> `sku=<*>`), so
//! numbers, ids, addresses and sizes never split a template while words stay
//! literal. Other token classes are *priors*: a path, a dotted name, a
//! quoted string or a `key=value` / `key:value` pair stays literal while it
//! never varies, but meets any other value-like token (and a template's
//! `<*>`) when records are compared, so the position widens when the data
//! shows it varying. Messages are grouped by token count and first token
//! (`<*>` for a value-like first token), the fixed depth of Drain's prefix
//! tree; inside a group a message joins the template whose literal tokens
//! it matches best when more than [`MinerConfig::similarity`] of its tokens
//! agree, and the template widens (differing positions become `<*>`,
//! keeping the punctuation both sides share: `[instance: <*>]`, and a
//! pair's key: `user=<*>`, `overlap:<*>`). When widening makes a template
//! cover another one of its group, the two merge, the older id surviving.
//! Templates of different lengths whose alignment shows a variable
//! spanning several tokens become one template ([`family`]). A position
//! that only ever held a few words is an enumeration, refined into one
//! template per word ([`TemplateMiner::refine`]); values (masked, value-like
//! or pair values) never count as such words.
//!
//! Ids are derived from a stable hash of the template's first form and kept
//! when it widens, so they are the same across runs and restarts
//! ([`TemplateMiner::save_state`] / [`TemplateMiner::load_state`]). Memory is
//! bounded: past [`MinerConfig::max_templates`] the rarest tenth of the
//! templates is evicted and counted in [`MinerStats::evicted`].
//!
//! Tokens are interned: templates hold `u32` ids and comparing a message to
//! a template compares integers. Only tokens that end up in a template (or
//! in the few-values statistics of one) are interned, so a stream of unique
//! tokens cannot grow the table without bound.

#[cfg(test)]
mod failure_classes;
mod family;

use crate::error::{Error, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// The variable marker, as in loghub's ground truth.
pub const WILDCARD: &str = "<*>";

/// Interned id of [`WILDCARD`].
const WILD: u32 = 0;

/// Ids at or above this are provisional: message tokens not (yet) interned.
/// Each position gets its own, so they never equal a template token.
const PROVISIONAL: u32 = u32::MAX - (1 << 20);

/// Miner settings. One set of defaults for every log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    /// Share of tokens that must agree to join a template (strictly more).
    pub similarity: f64,
    /// Most templates kept; the rarest are evicted beyond it.
    pub max_templates: usize,
    /// Extra regular expressions whose matches are variables.
    pub masks: Vec<String>,
    /// Most distinct words a variable position may hold and still be an
    /// enumeration (one template per word, see [`TemplateMiner::refine`]).
    pub max_enum_values: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig {
            similarity: 0.6,
            max_templates: 10_000,
            masks: Vec::new(),
            max_enum_values: 3,
        }
    }
}

/// The distinct literal tokens seen at one position, while they are few.
/// A `<*>` position that only ever held two or three words is an enum
/// ("Failed password" / "Failed none"), not a variable; see
/// [`TemplateMiner::refine`].
#[derive(Debug, Clone, Default)]
struct Values {
    /// (token id, count), or `None` once the position proved variable.
    few: Option<Vec<(u32, u64)>>,
}

/// One template.
#[derive(Debug, Clone)]
struct Cluster {
    /// Shared: every log record of the template carries it.
    id: Arc<str>,
    tokens: Vec<u32>,
    count: u64,
    /// Set when merged into another cluster (index of the survivor), or
    /// `usize::MAX` when evicted.
    merged_into: Option<usize>,
    values: Vec<Values>,
    /// Set when this cluster is a shape of another template (a length of
    /// it): its records carry that template's id. See [`family`].
    alias: Option<usize>,
    /// The shapes that are aliases of this template.
    members: Vec<usize>,
    /// This template's text across its shapes, when it has some.
    family: Option<Vec<u32>>,
}

impl Cluster {
    fn new(
        id: Arc<str>,
        tokens: Vec<u32>,
        count: u64,
        merged_into: Option<usize>,
        values: Vec<Values>,
    ) -> Self {
        Cluster {
            id,
            tokens,
            count,
            merged_into,
            values,
            alias: None,
            members: Vec::new(),
            family: None,
        }
    }
}

const EVICTED: usize = usize::MAX;

/// What [`TemplateMiner::add`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateMatch {
    /// Stable id (shared with the miner and every record of the template:
    /// a reference count, not a copy, per line).
    pub id: Arc<str>,
    /// Index of the cluster (resolve later with [`TemplateMiner::resolve`]).
    pub index: usize,
    /// Whether this message created the template.
    pub is_new: bool,
}

/// Where a message went, before its id is copied out: the hot path of
/// `remedy templates` needs only the index, and a `String` per line adds up.
struct Placed {
    index: usize,
    is_new: bool,
    /// The id when it was just made.
    id: Option<Arc<str>>,
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

/// Token table.
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<Box<str>, u32, rustc_hash::FxBuildHasher>,
    strs: Vec<Box<str>>,
    /// Per id: [`is_open`] of its text.
    open: Vec<bool>,
}

impl Interner {
    fn new() -> Self {
        let mut i = Interner::default();
        i.intern(WILDCARD);
        i
    }

    fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        let id = self.strs.len() as u32;
        self.open.push(is_open(s));
        self.strs.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    fn str(&self, id: u32) -> &str {
        &self.strs[id as usize]
    }

    fn is_open(&self, id: u32) -> bool {
        self.open[id as usize]
    }
}

/// Whether a token is a variable or looks like a value (see
/// [`looks_like_value`]): in a template, such a position accepts any other
/// value-like token; in a message, such a token agrees with a template's
/// value-like position.
fn is_open(tok: &str) -> bool {
    tok.contains(WILDCARD) || looks_like_value(tok)
}

/// Token classes that are priors for a variable without a digit in them:
/// a path (`/` or `\`), a dotted name (`chrome.exe`, `org.apache.Foo`,
/// `host.example.com`: a dot between two alphanumerics), a `key=value` or
/// `key:value` pair with a word for key, a quoted string. A prior, not the
/// decision: such a token stays literal in its template while it never
/// varies; it only lets records whose value differs there agree, so the
/// position widens (a digit-bearing token is masked outright instead).
fn looks_like_value(tok: &str) -> bool {
    let b = tok.as_bytes();
    if b.len() < 2 {
        return false;
    }
    if b.contains(&b'/') || b.contains(&b'\\') {
        return true;
    }
    if (b[0] == b'"' || b[0] == b'\'') && b.len() > 2 && b[b.len() - 1] == b[0] {
        return true;
    }
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    if b.windows(3)
        .any(|w| w[1] == b'.' && alnum(w[0]) && alnum(w[2]))
    {
        return true;
    }
    key_value(tok).is_some()
}

/// `key=value` or `key:value`: a word for key (letters, digits, `_`, `-`,
/// `.`, starting with a letter), a separator, a non-empty value. Returns the
/// key with its separator.
fn key_value(tok: &str) -> Option<&str> {
    let b = tok.as_bytes();
    let at = b.iter().position(|&c| c == b'=' || c == b':')?;
    let key = &b[..at];
    let ok = !key.is_empty()
        && key[0].is_ascii_alphabetic()
        && key
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
    (ok && at + 1 < b.len()).then(|| &tok[..=at])
}

/// The miner. See the module docs.
pub struct TemplateMiner {
    cfg: MinerConfig,
    masks: Vec<Regex>,
    /// Every mask acts within a token (see [`is_token_local`]).
    token_local: bool,
    /// Raw token -> id of its masked form, when `token_local`.
    token_cache: HashMap<Box<str>, u32, rustc_hash::FxBuildHasher>,
    interner: Interner,
    clusters: Vec<Cluster>,
    /// (token count << 32 | first token id) -> live cluster indexes.
    groups: HashMap<u64, Vec<usize>, rustc_hash::FxBuildHasher>,
    ids: HashMap<String, usize>,
    stats: MinerStats,
    /// Token ids of the last message (provisional ids for unknown tokens
    /// unless `intern_all`).
    last: Vec<u32>,
    /// Empty between calls; its allocation is reused for each message.
    toks: Vec<Tok<'static>>,
    /// Per token of the message being placed: [`is_open`].
    open: Vec<bool>,
    /// Intern every message token (offline use: `remedy templates` needs
    /// each line's tokens for refinement).
    intern_all: bool,
}

#[derive(Serialize, Deserialize)]
struct StoredCluster {
    id: String,
    tokens: Vec<String>,
    count: u64,
    merged_into: Option<usize>,
    #[serde(default)]
    values: Vec<Option<Vec<(String, u64)>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alias: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    family: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize)]
struct State {
    version: u32,
    config: MinerConfig,
    clusters: Vec<StoredCluster>,
    stats: MinerStats,
}

/// Words joined by spaces, a run of `<*>` written as one.
fn joined<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut prev: Option<&str> = None;
    for w in words {
        if w == WILDCARD && prev == Some(WILDCARD) {
            continue;
        }
        if prev.is_some() {
            out.push(' ');
        }
        out.push_str(w);
        prev = Some(w);
    }
    out
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// An emptied vector of tokens, re-typed for another lifetime: the
/// allocation is reused (an in-place collect of an empty vector), no token
/// crosses over.
fn recycle<'b>(mut v: Vec<Tok<'_>>) -> Vec<Tok<'b>> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

/// A token after masking.
enum Tok<'a> {
    Lit(&'a str),
    Wild,
    Owned(String),
    /// A token whose masked form is already interned (from the token cache).
    Id(u32),
}

impl Tok<'_> {
    /// The text of a token fresh from [`mask_token`], which never yields an
    /// `Id`.
    fn plain(&self) -> &str {
        match self {
            Tok::Lit(s) => s,
            Tok::Wild => WILDCARD,
            Tok::Owned(s) => s,
            Tok::Id(_) => unreachable!("mask_token never yields an interned id"),
        }
    }

    /// The token's text; `Id` tokens are looked up in `interner`.
    fn text<'s>(&'s self, interner: &'s Interner) -> &'s str {
        match self {
            Tok::Lit(s) => s,
            Tok::Wild => WILDCARD,
            Tok::Owned(s) => s,
            Tok::Id(id) => interner.str(*id),
        }
    }
}

/// The whitespace-separated words of a message, as `str::split_whitespace`
/// gives them, but byte by byte when the message is ASCII (nearly always,
/// and several times faster than decoding characters).
fn words(message: &str) -> Words<'_> {
    Words {
        message,
        at: 0,
        ascii: message.is_ascii(),
        slow: None,
    }
}

/// ASCII whitespace as `char::is_whitespace` sees it: \t \n \x0B \x0C \r
/// and space (`u8::is_ascii_whitespace` leaves out \x0B), as a bit test.
#[inline]
fn is_space(b: u8) -> bool {
    b <= b' ' && (0x1_0000_3E00u64 >> b) & 1 == 1
}

/// Length of the word at the start of `bytes` (not starting with
/// whitespace): up to the first whitespace byte or the end.
#[inline]
fn word_len(bytes: &[u8]) -> usize {
    crate::scan::until(bytes, 0, is_space)
}

struct Words<'a> {
    message: &'a str,
    at: usize,
    ascii: bool,
    slow: Option<std::str::SplitWhitespace<'a>>,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        if !self.ascii {
            return self
                .slow
                .get_or_insert_with(|| self.message.split_whitespace())
                .next();
        }
        let bytes = self.message.as_bytes();
        let start = self.at + bytes[self.at..].iter().position(|&b| !is_space(b))?;
        let end = start + word_len(&bytes[start..]);
        self.at = end;
        Some(&self.message[start..end])
    }
}

/// Entries in the raw-token cache before it is emptied and refilled:
/// bounded memory whatever the input.
const TOKEN_CACHE_CAP: usize = 1 << 16;

/// Whether a mask acts within one token, so masking each whitespace-split
/// token gives the same tokens as masking the whole message: it cannot
/// match whitespace or the empty string, and looks only at word boundaries
/// (which see a token's edge as a message does the space beside it), not
/// at the start or end of the text.
fn is_token_local(pattern: &str) -> bool {
    use regex_syntax::hir::{Class, Hir, HirKind, Look};
    fn spaces(h: &Hir) -> bool {
        match h.kind() {
            HirKind::Empty | HirKind::Look(_) => false,
            HirKind::Literal(l) => String::from_utf8_lossy(&l.0)
                .chars()
                .any(char::is_whitespace),
            HirKind::Class(Class::Unicode(c)) => c.ranges().iter().any(|r| {
                // Every Unicode White_Space code point lies in one of these.
                [
                    (0x09, 0x0d),
                    (0x20, 0x20),
                    (0x85, 0x85),
                    (0xa0, 0xa0),
                    (0x1680, 0x1680),
                    (0x2000, 0x200a),
                    (0x2028, 0x2029),
                    (0x202f, 0x202f),
                    (0x205f, 0x205f),
                    (0x3000, 0x3000),
                ]
                .iter()
                .any(|&(lo, hi)| (r.start() as u32) <= hi && (r.end() as u32) >= lo)
            }),
            HirKind::Class(Class::Bytes(c)) => c
                .ranges()
                .iter()
                .any(|r| (r.start()..=r.end()).any(|b| b.is_ascii_whitespace() || b >= 0x80)),
            HirKind::Repetition(r) => spaces(&r.sub),
            HirKind::Capture(c) => spaces(&c.sub),
            HirKind::Concat(v) | HirKind::Alternation(v) => v.iter().any(spaces),
        }
    }
    let Ok(hir) = regex_syntax::parse(pattern) else {
        return false;
    };
    let props = hir.properties();
    let looks_ok = props.look_set().iter().all(|l| {
        matches!(
            l,
            Look::WordAscii | Look::WordAsciiNegate | Look::WordUnicode | Look::WordUnicodeNegate
        )
    });
    looks_ok && props.minimum_len().is_some_and(|n| n > 0) && !spaces(&hir)
}

/// Month and weekday names: the words of a date printed inside a message
/// (`at Sat Jul  9 22:53:22 2005`), variables like the numbers beside them.
fn is_date_word(tok: &str) -> bool {
    const WORDS: [&str; 19] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Mon",
        "Tue", "Wed", "Thu", "Fri", "Sat", "Sun",
    ];
    tok.len() == 3 && WORDS.contains(&tok)
}

/// Mask one token: variables become `<*>`, keeping a `key=` prefix and
/// surrounding punctuation so `sku=42,` reads `sku=<*>,`.
fn mask_token(tok: &str) -> Tok<'_> {
    if is_date_word(tok) {
        return Tok::Wild;
    }
    if !tok.bytes().any(|b| b.is_ascii_digit()) || tok == WILDCARD {
        return Tok::Lit(tok);
    }
    if let Some((k, v)) = tok.split_once('=') {
        if !k.is_empty() && !k.bytes().any(|b| b.is_ascii_digit()) {
            // Built by hand: `format!` cost more than the rest of the
            // masking of a `rows=16` (a tenth of the miner on JSON logs).
            let v = mask_token(v);
            let v = v.plain();
            let mut owned = String::with_capacity(k.len() + 1 + v.len());
            owned.push_str(k);
            owned.push('=');
            owned.push_str(v);
            return Tok::Owned(owned);
        }
    }
    let lead = tok.len() - tok.trim_start_matches(['(', '[', '{', '"', '\'']).len();
    let trail = tok.len()
        - tok
            .trim_end_matches([')', ']', '}', '"', '\'', ',', ';', '.', ':'])
            .len();
    if lead + trail < tok.len() && lead + trail > 0 {
        let mut owned = String::with_capacity(lead + WILDCARD.len() + trail);
        owned.push_str(&tok[..lead]);
        owned.push_str(WILDCARD);
        owned.push_str(&tok[tok.len() - trail..]);
        Tok::Owned(owned)
    } else {
        Tok::Wild
    }
}

/// The wider of two differing tokens: `user=root` and `user=guest` give
/// `user=<*>` (a key keeps its name, its value is the variable), anything
/// else `<*>`.
fn widen(a: &str, b: &str) -> Option<String> {
    if let (Some(ka), Some(kb)) = (key_value(a), key_value(b)) {
        if ka == kb {
            return Some(format!("{ka}{WILDCARD}"));
        }
    }
    if let (Some((ka, _)), Some((kb, _))) = (a.split_once('='), b.split_once('=')) {
        if ka == kb && !ka.is_empty() && !ka.contains(WILDCARD) {
            return Some(format!("{ka}={WILDCARD}"));
        }
    }
    // Punctuation both share around the part that differs stays, as the
    // masking of a digit-bearing token keeps it: `[instance: <*>]` whether
    // the value had a digit or not.
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let lead = a
        .iter()
        .zip(b)
        .take_while(|(x, y)| x == y && LEAD.contains(x))
        .count();
    let trail = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y && TRAIL.contains(x))
        .count();
    if lead + trail == 0 || lead + trail >= a.len().min(b.len()) {
        return None;
    }
    let a = std::str::from_utf8(a).ok()?;
    Some(format!("{}{WILDCARD}{}", &a[..lead], &a[a.len() - trail..]))
}

/// Punctuation kept before a variable.
const LEAD: &[u8] = b"([{\"'";
/// Punctuation kept after a variable.
const TRAIL: &[u8] = b")]}\"',;.:";

/// The group of a template or message: its token count and its first token,
/// or `<*>` for a first token that is (or looks like) a value, so
/// `chrome.exe - ...` and `firefox.exe - ...` meet in one group.
fn group_key(len: usize, first: u32, first_open: bool) -> Option<u64> {
    let first = if first_open { WILD } else { first };
    (first < PROVISIONAL).then_some(((len as u64) << 32) | first as u64)
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
        let token_local = cfg.masks.iter().all(|m| is_token_local(m));
        Ok(TemplateMiner {
            cfg,
            masks,
            token_local,
            token_cache: HashMap::default(),
            interner: Interner::new(),
            clusters: Vec::new(),
            groups: HashMap::default(),
            ids: HashMap::new(),
            stats: MinerStats {
                max_templates: max,
                ..Default::default()
            },
            last: Vec::new(),
            toks: Vec::new(),
            open: Vec::new(),
            intern_all: false,
        })
    }

    /// Intern every message token so [`TemplateMiner::last_tokens`] can be
    /// kept and refined later (offline mining of a whole file).
    pub fn set_intern_all(&mut self, on: bool) {
        self.intern_all = on;
    }

    /// One token through the masks, in order.
    fn masked_token<'a>(&self, token: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(token);
        for m in &self.masks {
            if let Cow::Owned(s) = m.replace_all(&text, WILDCARD) {
                text = Cow::Owned(s);
            }
        }
        text
    }

    fn masked<'a>(&self, message: &'a str) -> Cow<'a, str> {
        let mut text = Cow::Borrowed(message);
        for m in &self.masks {
            if m.is_match(&text) {
                text = Cow::Owned(m.replace_all(&text, WILDCARD).into_owned());
            }
        }
        text
    }

    /// Tokens of a message after masking.
    pub fn tokens(&self, message: &str) -> Vec<String> {
        let text = self.masked(message);
        text.split_whitespace()
            .map(|t| mask_token(t).plain().to_string())
            .collect()
    }

    /// Match a message to a template, creating or widening one.
    pub fn add(&mut self, message: &str) -> TemplateMatch {
        let p = self.add_placed(message);
        TemplateMatch {
            id: p
                .id
                .unwrap_or_else(|| self.clusters[self.canon(p.index)].id.clone()),
            index: p.index,
            is_new: p.is_new,
        }
    }

    /// [`TemplateMiner::add`] without copying the template id out: the
    /// index of the template (resolve later with [`TemplateMiner::resolve`]
    /// or [`TemplateMiner::refine_ids`]).
    pub fn add_index(&mut self, message: &str) -> usize {
        self.add_placed(message).index
    }

    fn add_placed(&mut self, message: &str) -> Placed {
        if self.token_local {
            return self.add_by_token(message);
        }
        let text = self.masked(message);
        let toks: Vec<Tok> = text.split_whitespace().map(mask_token).collect();
        let mut last = std::mem::take(&mut self.last);
        last.clear();
        for (i, t) in toks.iter().enumerate() {
            let id = match t {
                Tok::Wild => WILD,
                _ if self.intern_all => self.interner.intern(t.plain()),
                _ => self
                    .interner
                    .get(t.plain())
                    .unwrap_or(PROVISIONAL + (i as u32).min((1 << 20) - 1)),
            };
            last.push(id);
        }
        let result = self.place(&toks, &last);
        self.last = last;
        result
    }

    /// [`TemplateMiner::add`] when every mask acts within a token: each
    /// whitespace-split token is masked on its own, and a token seen before
    /// is answered from a cache of raw token -> id of its masked form. Words
    /// repeat across messages far more than messages do, so most tokens
    /// skip the regular expressions and the interner's string hashing.
    fn add_by_token(&mut self, message: &str) -> Placed {
        // The token buffer is kept between calls (emptied, so no token of
        // an earlier message outlives it): one allocation per miner, not
        // per line.
        let mut toks: Vec<Tok> = recycle(std::mem::take(&mut self.toks));
        let mut last = std::mem::take(&mut self.last);
        last.clear();
        // Without masks the cache saves nothing: a token is then either a
        // variable (found by a scan of its bytes, no lookup) or its own
        // masked form, looked up in the interner just as the cache would
        // be, and the interner holds only template words while the cache
        // fills with every distinct number it is shown. Skipping it took
        // about a tenth off the replay engine's time.
        let cached = !self.masks.is_empty();
        for (i, raw) in words(message).enumerate() {
            if let Some(&id) = self.token_cache.get(raw).filter(|_| cached) {
                toks.push(if id == WILD { Tok::Wild } else { Tok::Id(id) });
                last.push(id);
                continue;
            }
            let tok = match self.masked_token(raw) {
                Cow::Borrowed(t) => mask_token(t),
                Cow::Owned(t) => match mask_token(&t) {
                    Tok::Wild => Tok::Wild,
                    other => Tok::Owned(other.plain().to_string()),
                },
            };
            let id = match &tok {
                Tok::Wild => WILD,
                t if self.intern_all => self.interner.intern(t.plain()),
                t => self
                    .interner
                    .get(t.plain())
                    .unwrap_or(PROVISIONAL + (i as u32).min((1 << 20) - 1)),
            };
            if cached && id < PROVISIONAL {
                if self.token_cache.len() >= TOKEN_CACHE_CAP {
                    self.token_cache.clear();
                }
                self.token_cache.insert(raw.into(), id);
            }
            toks.push(tok);
            last.push(id);
        }
        let result = self.place(&toks, &last);
        self.last = last;
        self.toks = recycle(toks);
        result
    }

    /// Token ids of the last message given to [`TemplateMiner::add`].
    pub fn last_tokens(&self) -> &[u32] {
        &self.last
    }

    fn template_key(&self, tokens: &[u32]) -> Option<u64> {
        let first = tokens.first().copied().unwrap_or(WILD);
        group_key(tokens.len(), first, self.interner.is_open(first))
    }

    fn place(&mut self, toks: &[Tok], ids: &[u32]) -> Placed {
        // Which message tokens are (or look like) values.
        let mut open = std::mem::take(&mut self.open);
        open.clear();
        open.extend(ids.iter().zip(toks).map(|(&id, t)| {
            if id < PROVISIONAL {
                self.interner.is_open(id)
            } else {
                is_open(t.text(&self.interner))
            }
        }));
        let key = group_key(
            ids.len(),
            ids.first().copied().unwrap_or(WILD),
            open.first().copied().unwrap_or(true),
        );
        let mut best: Option<(usize, usize, usize)> = None;
        if let Some(members) = key.and_then(|k| self.groups.get(&k)) {
            for &ci in members {
                let c = &self.clusters[ci];
                // A position agrees when the tokens are equal, variables
                // included: a masked number meets the template's `<*>`, and
                // a value-like token meets a template position that holds
                // a variable or a value (a `key=` keeping its key). A
                // template variable facing a literal word does not count,
                // so widened templates do not swallow unrelated messages.
                let mut same = 0;
                let mut params = 0;
                for (i, (&a, &b)) in c.tokens.iter().zip(ids).enumerate() {
                    same += usize::from(
                        a == b
                            || open[i] && self.interner.is_open(a) && self.same_key(a, b, toks, i),
                    );
                    params += usize::from(a == WILD);
                }
                if best.is_none_or(|(_, s, p)| same > s || (same == s && params > p)) {
                    best = Some((ci, same, params));
                }
            }
        }
        if let Some((ci, same, _)) = best {
            // Strictly more than the threshold: two-word messages that
            // differ in a word ("VM Started" / "VM Paused") stay apart.
            if same as f64 > self.cfg.similarity * ids.len() as f64 {
                let placed = self.join(ci, toks, ids, &open, key.expect("matched in a group"));
                self.open = open;
                return placed;
            }
        }
        self.open = open;
        self.create(toks, ids, key)
    }

    /// Whether template token `a` and message token `b` (position `i`) do
    /// not name different keys: `user=<*>` and `uid=0` are different
    /// fields, `user=<*>` and `user=root` the same.
    fn same_key(&self, a: u32, b: u32, toks: &[Tok], i: usize) -> bool {
        if a == WILD {
            return true;
        }
        let ta = self.interner.str(a);
        let tb = if b < PROVISIONAL {
            self.interner.str(b)
        } else {
            toks[i].text(&self.interner)
        };
        match (key_value(ta), key_value(tb)) {
            (Some(x), Some(y)) => x == y,
            (None, None) => true,
            _ => false,
        }
    }

    fn join(&mut self, ci: usize, toks: &[Tok], ids: &[u32], open: &[bool], key: u64) -> Placed {
        let max_values = self.cfg.max_enum_values;
        let mut widened = false;
        self.clusters[ci].count += 1;
        for (pos, &b) in ids.iter().enumerate() {
            let a = self.clusters[ci].tokens[pos];
            if a != b && a != WILD {
                let w = widen(self.interner.str(a), toks[pos].text(&self.interner));
                let new = match w {
                    Some(s) => self.interner.intern(&s),
                    None => WILD,
                };
                if new != a {
                    self.clusters[ci].tokens[pos] = new;
                    widened = true;
                }
            }
            // A path, a dotted name, a quoted string or the value of a
            // `key=value` pair is a variable's value, never one of an
            // enumeration's words.
            let b = if open[pos] && b != WILD && {
                let t = if b < PROVISIONAL {
                    self.interner.str(b)
                } else {
                    toks[pos].text(&self.interner)
                };
                !t.contains(WILDCARD) || key_value(t).is_some()
            } {
                WILD
            } else {
                b
            };
            // Track the few words a position holds.
            let needs = self.clusters[ci].values[pos]
                .few
                .as_ref()
                .is_some_and(|f| f.len() < max_values || f.iter().any(|(t, _)| *t == b));
            if b == WILD || b >= PROVISIONAL && !needs {
                let v = &mut self.clusters[ci].values[pos];
                if b == WILD || v.few.as_ref().is_some_and(|f| f.len() >= max_values) {
                    v.few = None;
                }
                continue;
            }
            let b = if b >= PROVISIONAL {
                self.interner.intern(toks[pos].plain())
            } else {
                b
            };
            // A word that fits the frame of a masked value the position
            // held (`deadbeef]` beside `<*>]`) is another value of that
            // variable: the position is no enumeration.
            let fits = |m: u32, w: u32| {
                let ms = self.interner.str(m);
                ms.contains(WILDCARD) && widen(ms, self.interner.str(w)).is_some_and(|x| x == ms)
            };
            let framed = self.clusters[ci].values[pos].few.as_ref().is_some_and(|f| {
                !f.iter().any(|(t, _)| *t == b) && f.iter().any(|&(t, _)| fits(t, b) || fits(b, t))
            });
            let v = &mut self.clusters[ci].values[pos];
            if let Some(few) = &mut v.few {
                if framed {
                    v.few = None;
                } else if let Some((_, n)) = few.iter_mut().find(|(t, _)| *t == b) {
                    *n += 1;
                } else if few.len() < max_values {
                    few.push((b, 1));
                } else {
                    v.few = None;
                }
            }
        }
        let ci = if widened {
            let ci = self.merge_covered(ci, key);
            self.join_family(ci);
            ci
        } else {
            ci
        };
        Placed {
            index: ci,
            is_new: false,
            id: None,
        }
    }

    fn create(&mut self, toks: &[Tok], ids: &[u32], key: Option<u64>) -> Placed {
        let tokens: Vec<u32> = ids
            .iter()
            .zip(toks)
            .map(|(&id, t)| {
                if id >= PROVISIONAL {
                    self.interner.intern(t.plain())
                } else {
                    id
                }
            })
            .collect();
        let text: Vec<&str> = toks.iter().map(|t| t.text(&self.interner)).collect();
        let mut id = format!("T{:012x}", fnv(&text.join(" ")) & 0xffff_ffff_ffff);
        while self.ids.contains_key(&id) {
            id = format!("T{:012x}", fnv(&id) & 0xffff_ffff_ffff);
        }
        let values = tokens
            .iter()
            .map(|&t| Values {
                few: (t != WILD).then(|| vec![(t, 1)]),
            })
            .collect();
        let key = key.unwrap_or_else(|| self.template_key(&tokens).expect("interned"));
        let ci = self.clusters.len();
        let shared: Arc<str> = id.as_str().into();
        self.clusters
            .push(Cluster::new(shared.clone(), tokens, 1, None, values));
        self.ids.insert(id.clone(), ci);
        self.groups.entry(key).or_default().push(ci);
        self.stats.templates += 1;
        self.join_family(ci);
        // The id its records carry: its template's, if it is a shape of one.
        let carried = self.clusters[self.canon(ci)].id.clone();
        if self.stats.templates > self.stats.max_templates {
            self.evict();
        }
        Placed {
            // Compaction (under eviction) moves clusters.
            index: self.ids.get(&*shared).copied().unwrap_or(ci),
            is_new: true,
            id: Some(carried),
        }
    }

    /// After `ci` widened, fold into it every template of its group that it
    /// now covers (same token wherever `ci` has a literal).
    fn merge_covered(&mut self, ci: usize, key: u64) -> usize {
        let Some(members) = self.groups.get(&key).cloned() else {
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
                .all(|(a, b)| *a == WILD || a == b);
            if !covers {
                continue;
            }
            // The older template keeps its id.
            let (keep, gone) = if other < survivor {
                (other, survivor)
            } else {
                (survivor, other)
            };
            let max_values = self.cfg.max_enum_values;
            let tokens = self.clusters[survivor].tokens.clone();
            let count = self.clusters[gone].count;
            let gone_values = std::mem::take(&mut self.clusters[gone].values);
            let k = &mut self.clusters[keep];
            k.tokens = tokens;
            k.count += count;
            for (v, g) in k.values.iter_mut().zip(gone_values) {
                match (&mut v.few, g.few) {
                    (Some(few), Some(other)) => {
                        for (t, n) in other {
                            if let Some((_, c)) = few.iter_mut().find(|(x, _)| *x == t) {
                                *c += n;
                            } else {
                                few.push((t, n));
                            }
                        }
                        if few.len() > max_values {
                            v.few = None;
                        }
                    }
                    _ => v.few = None,
                }
            }
            self.leave_family(gone);
            self.clusters[gone].merged_into = Some(keep);
            if let Some(g) = self.groups.get_mut(&key) {
                g.retain(|&x| x != gone);
            }
            self.stats.templates -= 1;
            self.stats.merged += 1;
            survivor = keep;
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
        let mut order: Vec<usize> = gone.iter().copied().collect();
        order.sort_unstable();
        for &ci in &order {
            self.leave_family(ci);
        }
        for &ci in &gone {
            let c = &mut self.clusters[ci];
            self.ids.remove(&*c.id);
            // Keep the slot (indexes stay valid) but free the tokens.
            c.tokens = Vec::new();
            c.values = Vec::new();
            c.merged_into = Some(EVICTED);
        }
        self.stats.templates -= gone.len();
        self.stats.evicted += gone.len() as u64;
        self.compact_if_sparse();
    }

    /// Drop evicted slots and unused tokens once evicted slots dominate, so
    /// memory follows the cap.
    fn compact_if_sparse(&mut self) {
        let dead = self
            .clusters
            .iter()
            .filter(|c| c.merged_into == Some(EVICTED))
            .count();
        if dead < self.clusters.len() / 2 {
            return;
        }
        let state = self.to_state();
        let mut stored: Vec<StoredCluster> = Vec::with_capacity(state.clusters.len() - dead);
        let mut remap = vec![EVICTED; state.clusters.len()];
        for (i, c) in state.clusters.into_iter().enumerate() {
            if c.merged_into != Some(EVICTED) {
                remap[i] = stored.len();
                stored.push(c);
            }
        }
        for c in &mut stored {
            c.merged_into = c
                .merged_into
                .map(|m| if m == EVICTED { m } else { remap[m] });
            c.alias = c.alias.map(|m| remap[m]);
        }
        self.load_clusters(stored);
    }

    fn to_state(&self) -> State {
        let s = |t: u32| self.interner.str(t).to_string();
        State {
            version: 1,
            config: self.cfg.clone(),
            clusters: self
                .clusters
                .iter()
                .map(|c| StoredCluster {
                    id: c.id.to_string(),
                    tokens: c.tokens.iter().map(|&t| s(t)).collect(),
                    count: c.count,
                    merged_into: c.merged_into,
                    values: c
                        .values
                        .iter()
                        .map(|v| {
                            v.few
                                .as_ref()
                                .map(|f| f.iter().map(|(t, n)| (s(*t), *n)).collect())
                        })
                        .collect(),
                    alias: c.alias,
                    family: c.family.as_ref().map(|f| f.iter().map(|&t| s(t)).collect()),
                })
                .collect(),
            stats: self.stats,
        }
    }

    fn load_clusters(&mut self, stored: Vec<StoredCluster>) {
        self.interner = Interner::new();
        self.token_cache.clear();
        self.groups.clear();
        self.ids.clear();
        self.clusters = stored
            .into_iter()
            .map(|c| {
                let tokens: Vec<u32> = c.tokens.iter().map(|t| self.interner.intern(t)).collect();
                let mut values: Vec<Values> = c
                    .values
                    .into_iter()
                    .map(|v| Values {
                        few: v.map(|f| {
                            f.iter()
                                .map(|(t, n)| (self.interner.intern(t), *n))
                                .collect()
                        }),
                    })
                    .collect();
                values.resize_with(tokens.len(), Values::default);
                let mut cl = Cluster::new(c.id.into(), tokens, c.count, c.merged_into, values);
                cl.alias = c.alias;
                cl.family = c
                    .family
                    .map(|f| f.iter().map(|t| self.interner.intern(t)).collect());
                cl
            })
            .collect();
        for i in 0..self.clusters.len() {
            if let Some(a) = self.clusters[i].alias {
                self.clusters[a].members.push(i);
            }
        }
        for (i, c) in self.clusters.iter().enumerate() {
            if c.merged_into.is_none() {
                if let Some(k) = self.template_key(&c.tokens) {
                    self.groups.entry(k).or_default().push(i);
                }
            }
            if c.merged_into != Some(EVICTED) {
                self.ids.insert(c.id.to_string(), i);
            }
        }
    }

    /// The shape a cluster index now stands for (following merges).
    fn shape(&self, mut index: usize) -> Option<usize> {
        loop {
            let c = self.clusters.get(index)?;
            match c.merged_into {
                None => return Some(index),
                Some(EVICTED) => return None,
                Some(next) => index = next,
            }
        }
    }

    /// Follow merges from a cluster index to the live template (None if
    /// evicted). Indexes from [`TemplateMatch::index`] stay valid until the
    /// next compaction, which only happens under eviction.
    pub fn resolve(&self, index: usize) -> Option<TemplateInfo> {
        let c = self.canon(self.shape(index)?);
        Some(TemplateInfo {
            id: self.clusters[c].id.to_string(),
            template: self.text(self.family_tokens(c)),
            count: self.family_count(c),
        })
    }

    /// Records of a template across its shapes.
    fn family_count(&self, c: usize) -> u64 {
        let c = &self.clusters[c];
        c.count
            + c.members
                .iter()
                .map(|&m| self.clusters[m].count)
                .sum::<u64>()
    }

    /// A template's text: its tokens, a run of variables written as one
    /// `<*>` (a list of values is one variable, whatever its length).
    fn text(&self, tokens: &[u32]) -> String {
        joined(tokens.iter().map(|&t| self.interner.str(t)))
    }

    /// Positions of a template that are enumerations: a `<*>` (or a `<*>`
    /// with punctuation around it, `(<*>)`) that only ever held two or three
    /// words. The value of a `key=value` pair never is, and neither is any
    /// position of a template with shapes of several lengths: there a
    /// variable spans several tokens and positions shift between records.
    fn enum_positions<'c>(&'c self, c: &'c Cluster) -> impl Iterator<Item = usize> + 'c {
        let single = c.alias.is_none() && c.members.is_empty();
        c.tokens
            .iter()
            .zip(&c.values)
            .enumerate()
            .filter(move |(_, (t, v))| {
                single
                    && v.few.as_ref().is_some_and(|f| f.len() > 1)
                    && (**t == WILD || {
                        let s = self.interner.str(**t);
                        s.contains(WILDCARD) && key_value(s).is_none()
                    })
            })
            .map(|(i, _)| i)
    }

    /// The template of one message, refined: a `<*>` position of its
    /// template that only ever held a few distinct words keeps the
    /// message's word. This separates enumerations a similarity threshold
    /// cannot ("Received disconnect ...: Bye Bye" from "...: disconnected by
    /// user") without letting rare words split real variables. The id is the
    /// template's id, suffixed when a position was refined. `tokens` are the
    /// message's tokens from [`TemplateMiner::tokens`].
    pub fn refine(&self, index: usize, tokens: &[String]) -> Option<TemplateInfo> {
        let s = self.shape(index)?;
        let c = self.canon(s);
        let mut out: Vec<&str> = self.clusters[s]
            .tokens
            .iter()
            .map(|&t| self.interner.str(t))
            .collect();
        let mut refined = false;
        for p in self.enum_positions(&self.clusters[s]) {
            if let Some(t) = tokens.get(p) {
                out[p] = t;
                refined = true;
            }
        }
        let text = joined(out);
        Some(self.refined_info(c, &text, refined))
    }

    /// The token positions whose words [`TemplateMiner::refine_ids`] may
    /// keep for template `index`: its refinement of a line depends on the
    /// line's ids at these positions only (none: every line of the
    /// template refines alike). None if the template was evicted.
    pub fn refine_positions(&self, index: usize) -> Option<Vec<usize>> {
        self.shape(index)
            .map(|s| self.enum_positions(&self.clusters[s]).collect())
    }

    /// [`TemplateMiner::refine`] for token ids from
    /// [`TemplateMiner::last_tokens`] (with interning of every token on).
    pub fn refine_ids(&self, index: usize, ids: &[u32]) -> Option<TemplateInfo> {
        let s = self.shape(index)?;
        let c = self.canon(s);
        let mut out = self.clusters[s].tokens.clone();
        let mut refined = false;
        for p in self.enum_positions(&self.clusters[s]) {
            if let Some(&t) = ids.get(p).filter(|t| **t < PROVISIONAL) {
                out[p] = t;
                refined = true;
            }
        }
        Some(self.refined_info(c, &self.text(&out), refined))
    }

    /// The template `c`'s info for a record: refined (its own shape's
    /// words at enumeration positions, the id suffixed) or the template's.
    fn refined_info(&self, c: usize, template: &str, refined: bool) -> TemplateInfo {
        let cl = &self.clusters[c];
        let (id, template) = if refined {
            (
                format!("{}-{:06x}", cl.id, fnv(template) & 0xff_ffff),
                template.to_string(),
            )
        } else {
            (cl.id.to_string(), self.text(self.family_tokens(c)))
        };
        TemplateInfo {
            id,
            template,
            count: self.family_count(c),
        }
    }

    /// Live templates, in creation order.
    pub fn templates(&self) -> impl Iterator<Item = TemplateInfo> + '_ {
        (0..self.clusters.len())
            .filter(|&i| self.clusters[i].merged_into.is_none() && self.clusters[i].alias.is_none())
            .map(|i| TemplateInfo {
                id: self.clusters[i].id.to_string(),
                template: self.text(self.family_tokens(i)),
                count: self.family_count(i),
            })
    }

    /// Counters.
    pub fn stats(&self) -> MinerStats {
        self.stats
    }

    /// Serialise the miner's state (JSON) so ids survive a restart.
    pub fn save_state(&self) -> String {
        serde_json::to_string(&self.to_state()).expect("state serialises")
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
        m.load_clusters(st.clusters);
        m.stats = st.stats;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// The fast splitter agrees with the standard library's on any text,
        /// ASCII with control bytes (the word-at-a-time path) or not.
        #[test]
        fn words_split_like_split_whitespace(s in "[ -~\t\n\x0B\x0C\r\x00-\x1F\u{85}\u{A0}\u{3000}é]{0,80}") {
            let fast: Vec<&str> = super::words(&s).collect();
            let std: Vec<&str> = s.split_whitespace().collect();
            proptest::prop_assert_eq!(fast, std);
        }
    }

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

    /// The three ways a message reaches `place` (per token with the raw
    /// token cache, per token without it, the whole message through the
    /// masks) agree on every id and template, over lines whose words
    /// repeat, vary, widen templates and fill the cache past its cap.
    #[test]
    fn the_token_paths_and_the_message_path_mine_alike() {
        let words = [
            "user", "alice", "bob", "root", "login", "failed", "for", "from", "port", "ttl=300",
            "sku=42,", "(120ms)", "Jan", "node-2", "HTTP/1.1", "10.0.0.7", "ok", "again",
        ];
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        let lines: Vec<String> = (0..TOKEN_CACHE_CAP + 5_000)
            .map(|i| {
                let n = 2 + next() % 6;
                let mut l: Vec<String> = (0..n)
                    .map(|_| words[next() % words.len()].to_string())
                    .collect();
                // A fresh number per line: the cache's worst case.
                l.insert(next() % (n + 1), format!("{}", i * 7919));
                l.join(" ")
            })
            .collect();
        let run = |masks: Vec<String>, token_local: bool| {
            let mut m = TemplateMiner::new(MinerConfig {
                masks,
                ..MinerConfig::default()
            })
            .unwrap();
            m.token_local = token_local;
            let ids: Vec<Arc<str>> = lines.iter().map(|l| m.add(l).id).collect();
            (ids, m.templates().collect::<Vec<_>>())
        };
        let ip = vec![r"\b\d+\.\d+\.\d+\.\d+\b".to_string()];
        let uncached = run(Vec::new(), true);
        assert!(uncached.1.len() > 10, "the lines make several templates");
        assert_eq!(uncached, run(Vec::new(), false));
        let cached = run(ip.clone(), true);
        assert_eq!(cached, run(ip, false));
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
