//! Templates of several lengths: one event whose records differ in length
//! because a variable spans a varying number of tokens (a list of values,
//! `N bytes (M KB)` beside `N bytes`, a name with a space in it) is one
//! template with several *shapes*.
//!
//! The streaming miner groups records by token count, so each length is
//! first a shape of its own. When a shape is created (or widens) it is
//! aligned with the templates of the same first token and a nearby length
//! (longest common subsequence of their tokens; a `<*>` or a value-like
//! token meets a value-like token). They are the same event when every gap
//! the alignment leaves holds a variable on one side or the other (a `<*>`
//! that is no enumeration, or a value-like token: the variable spans the
//! gap), a gap at either end is variables only (a list; an optional
//! trailing clause such as `... over <*> seconds` is a different
//! statement), and the words they agree on (at least two: `GET <*>` and
//! `GET /api/cart <*>` share only a verb) outweigh the words in the gaps
//! at least two to one. A gap of words only (`Failed password for invalid
//! user <*>` beside `Failed password for <*>`) or a `key=value` field
//! present in one and absent from the other (`... rhost=<*> user=<*>`
//! beside `... rhost=<*>`) is a different event. The decision is the
//! data's alignment, not a list of words. The younger shape becomes an
//! alias of the older template (whose id all its records share, as with
//! merges); the template's text is the alignment with each gap as one
//! `<*>`. Positions of a template with several shapes are never refined
//! as enumerations (they shift between shapes).

use super::{TemplateMiner, WILD, WILDCARD};

/// Lengths a shape may differ from a template by and still be aligned.
const MAX_SPAN: usize = 8;

/// Templates a new shape is aligned with, at most.
const MAX_CANDIDATES: usize = 16;

/// Longest token sequence aligned (a bound on the alignment's cost).
const MAX_ALIGN: usize = 96;

/// An alignment of a template's tokens and a shape's.
pub(super) struct Aligned {
    /// The merged template: agreed tokens, one `<*>` per gap.
    pub tokens: Vec<u32>,
}

impl TemplateMiner {
    /// The template a cluster is a shape of (itself when it is one).
    pub(super) fn canon(&self, mut i: usize) -> usize {
        while let Some(a) = self.clusters[i].alias {
            i = a;
        }
        i
    }

    /// A template's text across its shapes.
    pub(super) fn family_tokens(&self, c: usize) -> &[u32] {
        let c = &self.clusters[c];
        c.family.as_deref().unwrap_or(&c.tokens)
    }

    /// Whether a token holds a variable that may span a gap: a `<*>`, not
    /// the value of a named field (`user=<*>`).
    fn spans(&self, t: u32) -> bool {
        t == WILD || {
            let s = self.interner.str(t);
            s.contains(WILDCARD) && super::key_value(s).is_none()
        }
    }

    /// Per position of cluster `c`'s text: whether it holds a variable
    /// that may span a gap. A `<*>` that only ever held a few words is an
    /// enumeration ("Link has been severed" / "Connection reset by peer"),
    /// not a variable.
    fn variables(&self, c: usize) -> Vec<bool> {
        let cl = &self.clusters[c];
        match &cl.family {
            Some(f) => f.iter().map(|&t| self.spans(t)).collect(),
            None => cl
                .tokens
                .iter()
                .zip(&cl.values)
                .map(|(&t, v)| self.spans(t) && v.few.as_ref().is_none_or(|f| f.len() <= 1))
                .collect(),
        }
    }

    /// Align `a` (a template) and `b` (a shape), with which of their
    /// positions hold variables; None when they are not the same event
    /// (see the module docs).
    pub(super) fn align(
        &self,
        a: &[u32],
        b: &[u32],
        var_a: &[bool],
        var_b: &[bool],
    ) -> Option<Aligned> {
        let (n, m) = (a.len(), b.len());
        if n == 0 || m == 0 || n.max(m) > MAX_ALIGN {
            return None;
        }
        let w = m + 1;
        // Tokens agree when equal, or when both look like values of one
        // kind (two file names, `user=` and `user=`) or one is `<*>` and
        // the other looks like a value: as in placing a record, they meet
        // as a variable.
        let eq = |x: u32, y: u32| {
            x == y || {
                let (sx, sy) = (self.interner.str(x), self.interner.str(y));
                let (vx, vy) = (super::looks_like_value(sx), super::looks_like_value(sy));
                (vx && vy && super::key_value(sx) == super::key_value(sy))
                    || (x == WILD && vy && super::key_value(sy).is_none())
                    || (y == WILD && vx && super::key_value(sx).is_none())
            }
        };
        // dp[i * w + j]: longest common subsequence of a[i..] and b[j..].
        let mut dp = vec![0u16; (n + 1) * w];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                dp[i * w + j] = if eq(a[i], b[j]) {
                    dp[(i + 1) * w + j + 1] + 1
                } else {
                    dp[(i + 1) * w + j].max(dp[i * w + j + 1])
                };
            }
        }
        let mut out = Vec::with_capacity(n.max(m));
        let (mut ga, mut gb) = (Vec::new(), Vec::new());
        let (mut agreed, mut gap_words) = (0usize, 0usize);
        let (mut i, mut j) = (0, 0);
        loop {
            let end = i == n && j == m;
            let matched =
                i < n && j < m && eq(a[i], b[j]) && dp[i * w + j] == dp[(i + 1) * w + j + 1] + 1;
            if matched || end {
                if !ga.is_empty() || !gb.is_empty() {
                    // A value-like word (a path, a dotted name) is a
                    // variable's value, not a word of the statement; a
                    // `key=value` field is part of the statement.
                    let value = |t: u32| {
                        let s = self.interner.str(t);
                        super::looks_like_value(s) && super::key_value(s).is_none()
                    };
                    let has_var = ga.iter().any(|&p| var_a[p] || value(a[p]))
                        || gb.iter().any(|&p| var_b[p] || value(b[p]));
                    let toks = ga.iter().map(|&p| a[p]).chain(gb.iter().map(|&p| b[p]));
                    let words = toks
                        .filter(|&t| !self.interner.str(t).contains(WILDCARD) && !value(t))
                        .count();
                    // A gap at either end is an optional clause ("... over
                    // <*> seconds", "(bus <*>)"), a different statement,
                    // unless it is all variables (a list).
                    let inside = !out.is_empty() && !end;
                    if !has_var || (!inside && words > 0) {
                        return None;
                    }
                    gap_words += words;
                    if out.last() != Some(&WILD) {
                        out.push(WILD);
                    }
                    ga.clear();
                    gb.clear();
                }
                if end {
                    break;
                }
                let t = if a[i] == b[j] { a[i] } else { WILD };
                let text = self.interner.str(t);
                if !text.contains(WILDCARD) && !super::looks_like_value(text) {
                    agreed += 1;
                }
                if !(t == WILD && out.last() == Some(&WILD)) {
                    out.push(t);
                }
                i += 1;
                j += 1;
            } else if j < m && (i == n || dp[i * w + j + 1] >= dp[(i + 1) * w + j]) {
                gb.push(j);
                j += 1;
            } else {
                ga.push(i);
                i += 1;
            }
        }
        (agreed >= 2 && gap_words * 2 <= agreed).then_some(Aligned { tokens: out })
    }

    /// After shape `ci` was created or widened: when it is a template of
    /// its own, make it a shape of a template it aligns with (the older
    /// keeps its id). A template that gained a shape is aligned again
    /// with the others: its text now has variables where each shape alone
    /// had a word or two, so a shape seen before that (`Uploaded file
    /// "x.doc" in <*> ms`, whose name never varied, beside `"my notes.md"`
    /// and `"report 2024 final.pdf"`, whose words had varied only between
    /// two values when they were first aligned with it) joins it now, as
    /// it would have had the records come in another order.
    pub(super) fn join_family(&mut self, mut ci: usize) {
        // Each round unites two templates, so there are at most as many
        // rounds as templates; the bound keeps a hostile stream's work per
        // record bounded.
        for _ in 0..MAX_CANDIDATES {
            match self.join_once(ci) {
                Some(keep) => ci = keep,
                None => return,
            }
        }
    }

    /// One round of [`TemplateMiner::join_family`]: the template `ci`
    /// became part of, when it joined one.
    fn join_once(&mut self, ci: usize) -> Option<usize> {
        if self.clusters[ci].alias.is_some() || self.clusters[ci].merged_into.is_some() {
            return None;
        }
        let tokens = self.family_tokens(ci).to_vec();
        let var_b = self.variables(ci);
        let &first = self.clusters[ci].tokens.first()?;
        let first = if self.interner.is_open(first) {
            WILD
        } else {
            first
        };
        let n = self.clusters[ci].tokens.len();
        let mut seen: Vec<usize> = Vec::new();
        for len in n.saturating_sub(MAX_SPAN).max(1)..=n + MAX_SPAN {
            if len == n {
                continue;
            }
            let Some(members) = self.groups.get(&(((len as u64) << 32) | first as u64)) else {
                continue;
            };
            for &o in members.iter().take(MAX_CANDIDATES) {
                let c = self.canon(o);
                if c == ci || seen.contains(&c) {
                    continue;
                }
                seen.push(c);
            }
        }
        // Oldest first: a shape joins the template that came first. A
        // bounded number of candidates: a stream of ever new templates
        // costs a bounded alignment work per template.
        seen.sort_unstable();
        seen.truncate(MAX_CANDIDATES);
        for c in seen {
            let var_a = self.variables(c);
            let Some(al) = self.align(self.family_tokens(c), &tokens, &var_a, &var_b) else {
                continue;
            };
            self.unite(c, ci, al);
            return Some(c.min(ci));
        }
        None
    }

    /// Make template `b` (and its shapes) shapes of template `a`, with the
    /// alignment of `a`'s text and `b`'s.
    fn unite(&mut self, a: usize, b: usize, al: Aligned) {
        let (keep, gone) = if a < b { (a, b) } else { (b, a) };
        let moved = std::mem::take(&mut self.clusters[gone].members);
        for &m in moved.iter().chain([gone].iter()) {
            self.clusters[m].alias = Some(keep);
        }
        self.clusters[gone].family = None;
        let k = &mut self.clusters[keep];
        k.members.extend(moved);
        k.members.push(gone);
        k.family = Some(al.tokens);
        self.stats.templates -= 1;
        self.stats.merged += 1;
    }

    /// Unlink cluster `ci` from its template's shapes before it is merged
    /// into another or evicted: its shapes go to the oldest of them.
    pub(super) fn leave_family(&mut self, ci: usize) {
        if let Some(c) = self.clusters[ci].alias.take() {
            self.clusters[c].members.retain(|&m| m != ci);
            if self.clusters[c].members.is_empty() {
                self.clusters[c].family = None;
            }
            // It counted once for its template, not on its own.
            self.stats.templates += 1;
            return;
        }
        let mut members = std::mem::take(&mut self.clusters[ci].members);
        let family = self.clusters[ci].family.take();
        if members.is_empty() {
            return;
        }
        members.sort_unstable();
        let heir = members.remove(0);
        for &m in &members {
            self.clusters[m].alias = Some(heir);
        }
        let h = &mut self.clusters[heir];
        h.alias = None;
        h.family = if members.is_empty() { None } else { family };
        h.members = members;
        self.stats.templates += 1;
    }
}
