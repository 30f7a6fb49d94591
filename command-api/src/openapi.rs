//! The write side's part of the OpenAPI document: the identity routes and one path per registered
//! command, `POST /v1/commands/<name>`, each with the body its module documented
//! ([`CommandDoc`]), so that a client generated from the document has a type for every command.

use questlog_web::openapi::CommandDoc;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, Required, ResponseBuilder};
use utoipa::OpenApi as _;

use crate::writer::{CommandOutcome, EventOut};

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(crate::create_identity, crate::refresh_identity),
    components(schemas(CommandOutcome, EventOut))
)]
struct Writes;

/// The write side's document for the commands described by `commands`.
pub fn api_docs(commands: &[CommandDoc]) -> OpenApi {
    let mut doc = Writes::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    for command in commands {
        let body = body_schema_name(command.name);
        components
            .schemas
            .insert(body.clone(), command.body.clone());
        for (name, schema) in &command.schemas {
            components.schemas.insert(name.clone(), schema.clone());
        }
        let description = if command.admin {
            "An admin's token only (else `403 forbidden`)."
        } else {
            "The sender is the token's identity."
        };
        let operation = OperationBuilder::new()
            .operation_id(Some(command.name))
            .tag("commands")
            .summary(Some(command.summary.clone()))
            .description(Some(format!(
                "{description} Answered once its events are committed; read with \
                 `min_position=<position>` to see them."
            )))
            .parameter(header(
                "Idempotency-Key",
                "1–128 visible ASCII characters: the same key with the same body answers the \
                 first answer again (`Idempotent-Replayed: true`) and appends nothing; with \
                 another body, `422 idempotency_key_reused`.",
            ))
            .parameter(header(
                "X-Correlation-Id",
                "A UUID recorded in the events' metadata.",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(body)))
                            .build(),
                    )
                    .build(),
            ))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The command's events, committed")
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("CommandOutcome")))
                            .build(),
                    ),
            );
        doc.paths.add_path_operation(
            format!("/v1/commands/{}", command.name),
            vec![HttpMethod::Post],
            operation,
        );
    }
    doc
}

/// The name of the command `name`'s body schema: `register_player` → `RegisterPlayer`.
pub fn body_schema_name(name: &str) -> String {
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn header(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(Object::with_type(Type::String)))
        .build()
}
