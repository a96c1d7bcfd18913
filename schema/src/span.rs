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
        self.files.push(SourceFile {
            name: name.into(),
            text: text.into(),
        });
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
        let offset = (offset as usize).min(file.text.len());
        let mut offset = offset;
        while !file.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &file.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}
