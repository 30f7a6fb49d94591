//! The module's schema is embedded at build time (`sqlx::migrate!`): rebuild when one of its
//! migrations is added or changed.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
