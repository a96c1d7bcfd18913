//! Source files and byte spans.

/// Index of a source file in a [`Sources`] set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub u32);

/// A byte range in one source file. `Span::NONE` marks generated values that
/// have no place in any source (auto-created machines, defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// The file.
    pub file: FileId,
    /// Start byte offset (inclusive).
    pub start: u32,
    /// End byte offset (exclusive).
    pub end: u32,
}

impl Span {
    /// The span of generated values.
    pub const NONE: Span = Span {
        file: FileId(u32::MAX),
        start: 0,
        end: 0,
    };

    /// A span in `file` from `start` to `end`.
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: start as u32,
            end: end.max(start) as u32,
        }
    }

    /// Whether this span points into a source.
    pub fn is_real(&self) -> bool {
        self.file.0 != u32::MAX
    }

    /// The smallest span covering both (same file assumed).
    pub fn to(self, other: Span) -> Span {
        if !self.is_real() {
            return other;
        }
        if !other.is_real() || other.file != self.file {
            return self;
        }
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// One loaded source file.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path as given / shown to the user.
    pub name: String,
    /// The full text.
    pub text: String,
    /// Byte offset of the start of each line.
    line_starts: Vec<u32>,
}

impl SourceFile {
    fn new(name: String, text: String) -> SourceFile {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i as u32 + 1))
            .collect();
        SourceFile {
            name,
            text,
            line_starts,
        }
    }
}

/// All source files of one load, indexed by [`FileId`].
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The files, in load order.
    pub files: Vec<SourceFile>,
}

impl Sources {
    /// Add a file and return its id.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.files.push(SourceFile::new(name.into(), text.into()));
        FileId((self.files.len() - 1) as u32)
    }

    /// The file with this id.
    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, id: FileId, offset: u32) -> (usize, usize) {
        let Some(file) = self.get(id) else {
            return (0, 0);
        };
        let mut offset = (offset as usize).min(file.text.len());
        while !file.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = file
            .line_starts
            .partition_point(|&start| start as usize <= offset);
        let line_start = file.line_starts[line - 1] as usize;
        let col = file.text[line_start..offset].chars().count() + 1;
        (line, col)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters() {
        let mut s = Sources::default();
        let id = s.add("f", "ab\né—x\n\nz");
        assert_eq!(s.line_col(id, 0), (1, 1));
        assert_eq!(s.line_col(id, 2), (1, 3));
        assert_eq!(s.line_col(id, 3), (2, 1));
        // After `é—` (2 + 3 bytes): third character of line 2.
        assert_eq!(s.line_col(id, 8), (2, 3));
        assert_eq!(s.line_col(id, 10), (3, 1));
        assert_eq!(s.line_col(id, 11), (4, 1));
        assert_eq!(s.line_col(id, 99), (4, 2));
    }
}
