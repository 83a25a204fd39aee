//! Values as MongoDB sees them: the cross-type comparison order, equality, type names,
//! and field paths. Shared by the matcher, the SQL compiler, sorting and updates; owns no
//! storage.

mod compare;
mod path;

pub use compare::{compare_values, type_rank, values_equal, BsonType};
pub use path::FieldPath;
