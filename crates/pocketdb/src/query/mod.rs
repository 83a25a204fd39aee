//! Queries: the filter AST ([`ast`]), its parser from MongoDB JSON ([`parse`]), the
//! in-memory matcher ([`matcher`]), the SQL compiler ([`sql`]), sort specifications
//! ([`sort`]) and projections ([`projection`]).
//!
//! This module is pure: it never touches a connection. The collection layer decides
//! which back end answers a query.

pub mod ast;
pub mod builder;
pub mod matcher;
pub mod parse;
pub mod projection;
pub(crate) mod shape;
pub mod sort;
pub mod sql;

pub use ast::{AllItem, Cond, ElemMatch, Filter, InItem, InList, Regex};
pub use builder::{BuiltQuery, FieldClause, QueryBuilder};
pub use parse::parse_filter;
pub use projection::Projection;
pub use sort::{SortOrder, SortSpec};
