//! The query API: read models over HTTP, with read-your-writes.
