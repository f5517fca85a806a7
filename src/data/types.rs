//! The in-memory tables every loader produces and every model consumes.

/// One modality's embedding matrix, row-major `[items, dim]`, in the item order of its
/// [`ItemEmbeddings`].
#[derive(Clone, Debug, PartialEq)]
pub struct Modality {
    /// Name, e.g. `text`, `audio`, `image`, `kg`.
    pub name: String,
    /// Embedding width.
    pub dim: usize,
    /// `items × dim` values.
    pub data: Vec<f32>,
}

impl Modality {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Item embeddings: one matrix per modality, all in the order of `ids`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ItemEmbeddings {
    /// Item ids, unique.
    pub ids: Vec<String>,
    /// One matrix per modality.
    pub modalities: Vec<Modality>,
}

impl ItemEmbeddings {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// The modality called `name`.
    pub fn modality(&self, name: &str) -> Option<&Modality> {
        self.modalities.iter().find(|m| m.name == name)
    }
}

/// One user–item event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interaction {
    /// Index into [`Interactions::users`].
    pub user: u32,
    /// Index into [`Interactions::items`].
    pub item: u32,
    /// Rating or label (1/0 for clicks).
    pub label: f32,
    /// Seconds since the epoch (or any monotone clock).
    pub timestamp: i64,
}

/// An interaction log with its user and item vocabularies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Interactions {
    /// User ids; `Interaction::user` indexes this.
    pub users: Vec<String>,
    /// Item ids; `Interaction::item` indexes this.
    pub items: Vec<String>,
    /// The events.
    pub rows: Vec<Interaction>,
}

/// Item side information: a title or text and optional labels (genres, true clusters).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ItemTable {
    /// Item ids.
    pub ids: Vec<String>,
    /// Named text fields per item (e.g. `title`, `year`, `genres`), same order as `ids`.
    pub fields: Vec<(String, Vec<String>)>,
    /// Optional categorical labels per item (e.g. first genre, true cluster), for purity.
    pub labels: Option<Vec<u32>>,
    /// Names of the label values.
    pub label_names: Vec<String>,
}
