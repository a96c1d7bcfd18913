//! The one place where diagnostics become text: codespan-reporting for people,
//! one JSON object per line for editors and CI.

use anklume_schema::{Diagnostic, Severity, Sources};
use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label, Severity as CsSeverity};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, Config, Styles, StylesWriter};

fn files(sources: &Sources) -> SimpleFiles<&str, &str> {
    let mut files = SimpleFiles::new();
    for f in &sources.files {
        files.add(f.name.as_str(), f.text.as_str());
    }
    files
}

fn to_codespan(d: &Diagnostic, sources: &Sources) -> CsDiagnostic<usize> {
    let severity = match d.severity {
        Severity::Error => CsSeverity::Error,
        Severity::Warning => CsSeverity::Warning,
        Severity::Info => CsSeverity::Note,
    };
    let clamp = |s: anklume_schema::Span| {
        let len = sources.get(s.file).map_or(0, |f| f.text.len());
        let start = (s.start as usize).min(len);
        let end = (s.end as usize).clamp(start, len);
        (s.file.0 as usize, start..end)
    };
    let mut labels = Vec::new();
    if let Some(p) = &d.primary {
        if sources.get(p.span.file).is_some() {
            let (f, r) = clamp(p.span);
            labels.push(Label::primary(f, r).with_message(&p.message));
        }
    }
    for s in &d.secondary {
        if sources.get(s.span.file).is_some() {
            let (f, r) = clamp(s.span);
            labels.push(Label::secondary(f, r).with_message(&s.message));
        }
    }
    let mut notes = Vec::new();
    if let Some(h) = &d.help {
        notes.push(format!("help: {h}"));
    }
    CsDiagnostic::new(severity)
        .with_code(d.code)
        .with_message(&d.message)
        .with_labels(labels)
        .with_notes(notes)
}

/// Render diagnostics for a terminal (`color`) or plain text.
pub fn render_text(diags: &[Diagnostic], sources: &Sources, color: bool) -> String {
    let files = files(sources);
    let config = Config::default();
    let mut out = String::new();
    for d in diags {
        let cs = to_codespan(d, sources);
        if color {
            let mut buf = termcolor::Buffer::ansi();
            let styles = Styles::default();
            let mut w = StylesWriter::new(&mut buf, &styles);
            if term::emit_to_write_style(&mut w, &config, &files, &cs).is_ok() {
                out.push_str(&String::from_utf8_lossy(buf.as_slice()));
            }
        } else if let Ok(s) = term::emit_into_string(&config, &files, &cs) {
            out.push_str(&s);
        }
    }
    out
}

/// One JSON object per diagnostic and line: code, severity, message, file,
/// line, column, end (line, column), help. Lines and columns are 1-based.
pub fn render_json(diags: &[Diagnostic], sources: &Sources) -> String {
    let mut out = String::new();
    for d in diags {
        let (file, start, end) = match &d.primary {
            Some(p) if sources.get(p.span.file).is_some() => {
                let f = sources.get(p.span.file).map(|f| f.name.clone());
                let (l, c) = sources.line_col(p.span.file, p.span.start);
                let (el, ec) = sources.line_col(p.span.file, p.span.end);
                (f, Some((l, c)), Some((el, ec)))
            }
            _ => (None, None, None),
        };
        let obj = serde_json::json!({
            "code": d.code,
            "severity": match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
            },
            "message": d.message,
            "file": file,
            "line": start.map(|s| s.0),
            "column": start.map(|s| s.1),
            "end": end.map(|e| serde_json::json!({"line": e.0, "column": e.1})),
            "help": d.help,
            "label": d.primary.as_ref().map(|p| p.message.clone()).filter(|m| !m.is_empty()),
            "labels": d.secondary.iter().map(|l| {
                let (line, column) = sources.line_col(l.span.file, l.span.start);
                serde_json::json!({
                    "file": sources.get(l.span.file).map(|f| f.name.clone()),
                    "line": line, "column": column, "message": l.message,
                })
            }).collect::<Vec<_>>(),
        });
        out.push_str(&obj.to_string());
        out.push('\n');
    }
    out
}
