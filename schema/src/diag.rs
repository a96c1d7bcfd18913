//! Diagnostics as plain data. Rendering (codespan) lives in the compiler.

use std::collections::HashMap;

use crate::span::Span;

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Informational notice (auto-created objects).
    Info,
    /// Suspicious but accepted.
    Warning,
    /// The input is rejected.
    Error,
}

/// A label pointing at a place in a source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there (may be empty).
    pub message: String,
}

/// One problem found in the sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code, such as `E0202`.
    pub code: &'static str,
    /// Severity.
    pub severity: Severity,
    /// One-line message.
    pub message: String,
    /// The culprit; `None` for problems with no place (a missing file).
    pub primary: Option<Label>,
    /// Other places that matter.
    pub secondary: Vec<Label>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with a primary label.
    pub fn error(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic::new(code, Severity::Error, message, span)
    }

    /// A warning with a primary label.
    pub fn warning(code: &'static str, message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic::new(code, Severity::Warning, message, span)
    }

    /// A diagnostic of any severity.
    pub fn new(
        code: &'static str,
        severity: Severity,
        message: impl Into<String>,
        span: Span,
    ) -> Diagnostic {
        Diagnostic {
            code,
            severity,
            message: message.into(),
            primary: span.is_real().then(|| Label {
                span,
                message: String::new(),
            }),
            secondary: Vec::new(),
            help: None,
        }
    }

    /// Set the primary label's text.
    pub fn label(mut self, message: impl Into<String>) -> Diagnostic {
        if let Some(p) = &mut self.primary {
            p.message = message.into();
        }
        self
    }

    /// Add a secondary label (ignored for spans that point nowhere).
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        if span.is_real() {
            self.secondary.push(Label {
                span,
                message: message.into(),
            });
        }
        self
    }

    /// Set the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// How many diagnostics of one code are kept and printed; the others are
/// only counted.
pub const MAX_PER_CODE: usize = 50;

/// Diagnostics of one code that were counted but not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Omitted {
    /// The code, e.g. `E0201`.
    pub code: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// How many were left out.
    pub count: usize,
}

/// Keeps the first [`MAX_PER_CODE`] diagnostics of each code, in order, and
/// counts the rest, so that what is stored stays bounded whatever the input.
/// The compiler collects its diagnostics in one; readers working in parallel
/// can each fill their own and [`Capped::extend`] them in order.
#[derive(Debug, Default)]
pub struct Capped {
    /// The kept diagnostics.
    pub kept: Vec<Diagnostic>,
    /// Per code seen: how many kept, and what was omitted.
    counts: HashMap<&'static str, (usize, usize, Severity)>,
    /// Codes in order of first appearance.
    order: Vec<&'static str>,
}

impl Capped {
    /// Keep `d` if its code has room, else count it.
    pub fn push(&mut self, d: Diagnostic) {
        let slot = self.counts.entry(d.code).or_insert_with(|| {
            self.order.push(d.code);
            (0, 0, d.severity)
        });
        if slot.0 < MAX_PER_CODE {
            slot.0 += 1;
            self.kept.push(d);
        } else {
            slot.1 += 1;
        }
    }

    /// Whether a diagnostic of `code` would be kept.
    pub fn has_room(&self, code: &str) -> bool {
        self.counts.get(code).is_none_or(|c| c.0 < MAX_PER_CODE)
    }

    /// Count `n` more diagnostics of `code` without keeping them.
    pub fn add_omitted(&mut self, code: &'static str, severity: Severity, n: usize) {
        if n == 0 {
            return;
        }
        let slot = self.counts.entry(code).or_insert_with(|| {
            self.order.push(code);
            (0, 0, severity)
        });
        slot.1 += n;
    }

    /// Keep `make()` if `code` has room, else count one `code` diagnostic of
    /// `severity` without building it: for diagnostics that are costly to
    /// build (a did-you-mean search, a list of known keys) and may come by
    /// the million.
    pub fn push_with(
        &mut self,
        code: &'static str,
        severity: Severity,
        make: impl FnOnce() -> Diagnostic,
    ) {
        if self.has_room(code) {
            let d = make();
            debug_assert_eq!((d.code, d.severity), (code, severity));
            self.push(d);
        } else {
            self.add_omitted(code, severity, 1);
        }
    }

    /// An empty collector for diagnostics that will be [`Capped::extend`]ed
    /// into `self` after everything `self` holds now: codes already full
    /// here are full there too, so their diagnostics are only counted (and,
    /// through [`Capped::has_room`], need not be built). Readers working in
    /// parallel each start from one.
    pub fn fork(&self) -> Capped {
        let mut c = Capped::default();
        for (code, (kept, _, severity)) in &self.counts {
            if *kept >= MAX_PER_CODE {
                c.counts.insert(code, (MAX_PER_CODE, 0, *severity));
                c.order.push(code);
            }
        }
        c
    }

    /// Append `other` (collected after `self`): its kept diagnostics go
    /// through the cap, its omitted counts are added.
    pub fn extend(&mut self, other: Capped) {
        let (kept, omitted) = other.finish();
        for d in kept {
            self.push(d);
        }
        for o in omitted {
            self.add_omitted(o.code, o.severity, o.count);
        }
    }

    /// The kept diagnostics and, per code in order of first appearance, the
    /// omitted counts.
    pub fn finish(self) -> (Vec<Diagnostic>, Vec<Omitted>) {
        let omitted = self
            .order
            .iter()
            .filter_map(|c| {
                let (_, n, severity) = self.counts[c];
                (n > 0).then_some(Omitted {
                    code: c,
                    severity,
                    count: n,
                })
            })
            .collect();
        (self.kept, omitted)
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    const MIN_SIMILARITY: f64 = 0.7;
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= MIN_SIMILARITY)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(code: &'static str) -> Diagnostic {
        Diagnostic::error(code, "m", Span::NONE)
    }

    #[test]
    fn capped_keeps_the_first_of_each_code_and_counts_the_rest() {
        let mut a = Capped::default();
        for _ in 0..MAX_PER_CODE + 5 {
            a.push(d("E0201"));
        }
        a.push(d("E0202"));
        let mut b = Capped::default();
        for _ in 0..3 {
            b.push(d("E0201"));
        }
        b.push(d("E0203"));
        a.extend(b);
        let (kept, omitted) = a.finish();
        assert_eq!(
            kept.iter().filter(|x| x.code == "E0201").count(),
            MAX_PER_CODE
        );
        assert_eq!(kept.len(), MAX_PER_CODE + 2);
        assert_eq!(
            omitted,
            vec![Omitted {
                code: "E0201",
                severity: Severity::Error,
                count: 8
            }]
        );
    }

    #[test]
    fn a_fork_counts_without_building_what_its_parent_has_no_room_for() {
        let mut parent = Capped::default();
        for _ in 0..MAX_PER_CODE {
            parent.push(d("E0201"));
        }
        parent.push(d("E0202"));
        let mut child = parent.fork();
        assert!(!child.has_room("E0201"));
        assert!(child.has_room("E0202"));
        child.push_with("E0201", Severity::Error, || unreachable!("no room"));
        child.push_with("E0202", Severity::Error, || d("E0202"));
        child.push(d("E0203"));
        parent.extend(child);
        let (kept, omitted) = parent.finish();
        let codes: Vec<_> = kept.iter().map(|x| x.code).collect();
        assert_eq!(codes.len(), MAX_PER_CODE + 3);
        assert_eq!(codes[MAX_PER_CODE..], ["E0202", "E0202", "E0203"]);
        assert_eq!(
            omitted,
            vec![Omitted {
                code: "E0201",
                severity: Severity::Error,
                count: 1
            }]
        );
    }
}
