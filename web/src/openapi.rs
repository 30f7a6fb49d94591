//! The OpenAPI document's registry (`GET /v1/openapi.json`): each module adds the description of
//! what it brings — its routes' paths (utoipa's `#[utoipa::path]` on the handlers, gathered by a
//! `#[derive(OpenApi)]`) and each command's body ([`CommandDoc`]) — on the
//! [`App`](questlog_domain::App) it registers on, and the binary merges them with the kernel's own
//! at start ([`ApiDocs`]). The kernel names no module: it documents whatever was registered.

use std::borrow::Cow;

use questlog_domain::App;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// The name every problem+json answer's schema goes by in the document.
pub const PROBLEM_SCHEMA: &str = "Problem";

/// A problem+json answer (RFC 9457) as every error is written: a stable `code` to switch on, and
/// for a few codes extension members beside it (`current` on `version_conflict`, `errors` on
/// `schema_violation`).
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemSchema {
    /// `https://questlog.dev/problems/<code>`.
    #[serde(rename = "type")]
    kind: String,
    /// The status's reason phrase.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong, for a person.
    detail: String,
    /// The stable snake_case code a client switches on (`unauthorized`, `unknown_lab`, …).
    code: String,
}

/// The description of one command's body (`POST /v1/commands/{name}`): its JSON Schema and what
/// it does, registered by the module whose parser takes the name.
#[derive(Clone)]
pub struct CommandDoc {
    /// The command's wire name.
    pub name: &'static str,
    /// What it does, in one line.
    pub summary: Cow<'static, str>,
    /// Whether only an admin's token may send it.
    pub admin: bool,
    /// The body's schema's name in the document.
    pub body_name: String,
    /// The body's schema.
    pub body: RefOr<Schema>,
    /// The schemas the body's schema refers to.
    pub schemas: Vec<(String, RefOr<Schema>)>,
}

impl CommandDoc {
    /// The command `name`, whose body is `B`.
    pub fn of<B: ToSchema>(name: &'static str, summary: impl Into<Cow<'static, str>>) -> Self {
        let mut schemas = Vec::new();
        B::schemas(&mut schemas);
        Self {
            name,
            summary: summary.into(),
            admin: false,
            body_name: B::name().into_owned(),
            body: B::schema(),
            schemas,
        }
    }

    /// The same command, sendable by an admin only.
    #[must_use]
    pub fn admin(mut self) -> Self {
        self.admin = true;
        self
    }
}

/// What the running modules registered for the document (an [`App`] part).
#[derive(Clone, Default)]
pub struct ApiDocs {
    fragments: Vec<OpenApi>,
    commands: Vec<CommandDoc>,
}

impl ApiDocs {
    /// The part the modules registered on `app` (empty when none did).
    pub fn of(app: &App) -> Self {
        app.part::<Self>().cloned().unwrap_or_default()
    }

    /// The modules' own documents (their routes), in registration order.
    pub fn fragments(&self) -> &[OpenApi] {
        &self.fragments
    }

    /// The commands' bodies, in registration order (a name registered again, as
    /// `App::extend_command` does, is described by its last registration).
    pub fn commands(&self) -> &[CommandDoc] {
        &self.commands
    }
}

/// Registering a module's part of the document on the [`App`].
pub trait ApiDocsExt {
    /// The description of routes the module serves (its handlers' `#[utoipa::path]`s).
    fn add_api_docs(&mut self, doc: OpenApi) -> &mut Self;

    /// The bodies of commands the module parses.
    fn add_command_docs(&mut self, docs: impl IntoIterator<Item = CommandDoc>) -> &mut Self;
}

impl ApiDocsExt for App {
    fn add_api_docs(&mut self, doc: OpenApi) -> &mut Self {
        self.part_mut::<ApiDocs>().fragments.push(doc);
        self
    }

    fn add_command_docs(&mut self, docs: impl IntoIterator<Item = CommandDoc>) -> &mut Self {
        let commands = &mut self.part_mut::<ApiDocs>().commands;
        for doc in docs {
            commands.retain(|c| c.name != doc.name);
            commands.push(doc);
        }
        self
    }
}

/// The whole document: `parts` (the kernel's and the modules') merged under questlog's info, with
/// what holds for every route written once here — a Bearer token unless a route says otherwise,
/// and every error answered as problem+json ([`ProblemSchema`]).
pub fn document(parts: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{ContentBuilder, InfoBuilder, Ref, ResponseBuilder};

    let mut doc = OpenApi::new(
        InfoBuilder::new()
            .title("questlog")
            .version("1")
            .description(Some(
                "An event-sourced backend for games: commands in, events in a log, reads with \
                 read-your-writes (`min_position`) and time travel (`as_of`), live pushes over \
                 Server-Sent Events. Every error is `application/problem+json` with a stable \
                 `code`.",
            ))
            .build(),
        utoipa::openapi::Paths::new(),
    );
    for mut part in parts {
        if let (Some(theirs), Some(ours)) = (part.components.as_mut(), doc.components.as_ref()) {
            // Two parts naming different schemas alike would silently describe one with the
            // other's shape: each must name its own (`#[schema(as = …)]`).
            theirs
                .schemas
                .retain(|name, schema| match ours.schemas.get(name) {
                    Some(known) => {
                        assert!(
                            known == schema,
                            "two parts of the API document name different schemas {name:?}"
                        );
                        false
                    }
                    None => true,
                });
        }
        doc.merge(part);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert(PROBLEM_SCHEMA.to_owned(), ProblemSchema::schema());
    components.security_schemes.insert(
        "bearer".to_owned(),
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    doc.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    let problem = ResponseBuilder::new()
        .description("An error: problem+json with a stable `code`")
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(PROBLEM_SCHEMA)))
                .build(),
        )
        .build();
    for item in doc.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            operation
                .responses
                .responses
                .entry("default".to_owned())
                .or_insert_with(|| problem.clone().into());
        }
    }
    doc
}
