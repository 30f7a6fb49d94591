//! The modules this binary runs. A module is one crate and one line here.

use questlog_domain::App;

/// The app with every module questlog ships registered.
pub fn app() -> App {
    let mut app = App::new();
    app.add_module(&questlog_academy::Academy);
    app
}
