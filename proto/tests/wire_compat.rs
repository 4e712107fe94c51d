//! The API stays wire-compatible with the original system: its service, methods, messages,
//! field numbers and types are all still there, unchanged, and bytes written by an original
//! client decode as intended (and the other way round).

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};
use taskmanager_proto::{FILE_DESCRIPTOR_SET, original, pb};

fn file() -> FileDescriptorProto {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    set.file
        .into_iter()
        .find(|file| file.name() == "taskmanager.proto")
        .expect("taskmanager.proto is in the descriptor set")
}

fn message<'a>(file: &'a FileDescriptorProto, name: &str) -> &'a DescriptorProto {
    file.message_type
        .iter()
        .find(|message| message.name() == name)
        .unwrap_or_else(|| panic!("message {name} exists"))
}

/// (name, number, type, type name) of each field of `message` numbered at most `max`.
fn fields(message: &DescriptorProto, max: i32) -> Vec<(String, i32, Type, String)> {
    message
        .field
        .iter()
        .filter(|field| field.number() <= max)
        .map(|field| {
            assert_eq!(
                field.label(),
                Label::Optional,
                "{} must stay singular",
                field.name()
            );
            (
                field.name().to_owned(),
                field.number(),
                field.r#type(),
                field.type_name().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_original_service_and_methods_are_unchanged() {
    let file = file();
    assert_eq!(file.package(), "proto");
    let service = file
        .service
        .iter()
        .find(|service| service.name() == "TaskManager")
        .expect("service TaskManager exists");
    let method = |name: &str| {
        service
            .method
            .iter()
            .find(|method| method.name() == name)
            .unwrap_or_else(|| panic!("method {name} exists"))
    };
    let submit = method("SubmitTask");
    assert_eq!(submit.input_type(), ".proto.TaskRequest");
    assert_eq!(submit.output_type(), ".proto.TaskResponse");
    assert!(!submit.client_streaming() && !submit.server_streaming());
    let stream = method("StreamTaskStatus");
    assert_eq!(stream.input_type(), ".proto.StatusRequest");
    assert_eq!(stream.output_type(), ".proto.StatusResponse");
    assert!(!stream.client_streaming() && stream.server_streaming());
}

#[test]
fn the_original_messages_keep_their_fields() {
    let file = file();
    let s = |name: &str| name.to_owned();
    assert_eq!(
        fields(message(&file, "TaskRequest"), 4),
        vec![
            (s("task_description"), 1, Type::String, s("")),
            (s("priority"), 2, Type::Enum, s(".proto.TaskPriority")),
            (s("number1"), 3, Type::Int32, s("")),
            (s("number2"), 4, Type::Int32, s("")),
        ]
    );
    assert_eq!(
        fields(message(&file, "TaskResponse"), 1),
        vec![(s("task_id"), 1, Type::String, s(""))]
    );
    assert_eq!(
        fields(message(&file, "StatusRequest"), 1),
        vec![(s("task_id"), 1, Type::String, s(""))]
    );
    assert_eq!(
        fields(message(&file, "StatusResponse"), 1),
        vec![(s("status"), 1, Type::String, s(""))]
    );

    let priority = file
        .enum_type
        .iter()
        .find(|e| e.name() == "TaskPriority")
        .expect("enum TaskPriority exists");
    let values: Vec<_> = priority
        .value
        .iter()
        .map(|v| (v.name(), v.number()))
        .collect();
    assert_eq!(values, vec![("LOW", 0), ("MEDIUM", 1), ("HIGH", 2)]);
}

#[test]
fn field_numbers_are_unique_in_every_message() {
    for message in &file().message_type {
        let mut numbers: Vec<_> = message.field.iter().map(|f| f.number()).collect();
        let count = numbers.len();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(
            numbers.len(),
            count,
            "{} reuses a field number",
            message.name()
        );
    }
}

#[test]
fn an_original_request_decodes_into_the_current_message() {
    let bytes = original::TaskRequest {
        task_description: "add two numbers".into(),
        priority: original::TaskPriority::High.into(),
        number1: 7,
        number2: -5,
    }
    .encode_to_vec();
    let request = pb::TaskRequest::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(request.task_description, "add two numbers");
    assert_eq!(request.priority(), pb::TaskPriority::High);
    assert_eq!((request.number1, request.number2), (7, -5));
    assert_eq!(request.idempotency_key, "");
    assert_eq!(request.kind, "");
}

#[test]
fn a_current_status_decodes_in_an_original_client() {
    let bytes = pb::StatusResponse {
        status: "IN_PROGRESS".into(),
        state: pb::TaskState::InProgress.into(),
        task_id: "01JD6".into(),
        sequence: 3,
        progress: 40,
        attempt: 1,
        max_attempts: 3,
        result: String::new(),
        error: String::new(),
        updated_at_unix_ms: 1_764_201_600_000,
    }
    .encode_to_vec();
    let status = original::StatusResponse::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(status.status, "IN_PROGRESS");
}
