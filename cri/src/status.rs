//! The one mapping from image-store errors to gRPC statuses: each
//! [`ErrorKind`] is exactly one [`Code`], and the message is the error's
//! full text, causes included, so crictl and kubelet events show the real
//! reason (a registry's "manifest unknown", a full disk, a bad digest).
//!
//! Both [`ImageError`] and [`Status`] are foreign to this crate, so the
//! orphan rule rules out `impl From<ImageError> for Status`; handlers use
//! `.map_err(image_error_status)` instead.

use std::error::Error;

use skiff_images::{ErrorKind, ImageError};
use skiff_runtime::{ErrorKind as RuntimeErrorKind, RuntimeError};
use tonic::{Code, Status};

/// The gRPC status a CRI client gets for `err`.
pub fn image_error_status(err: ImageError) -> Status {
    Status::new(code(err.kind()), full_text(&err))
}

/// The gRPC code for an image-store error kind.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::DataLoss => Code::DataLoss,
        ErrorKind::Internal => Code::Internal,
    }
}

/// The gRPC status a CRI client gets for a node-runtime error.
pub fn runtime_error_status(err: RuntimeError) -> Status {
    Status::new(runtime_code(err.kind()), full_text(&err))
}

/// The gRPC code for a node-runtime error kind.
pub fn runtime_code(kind: RuntimeErrorKind) -> Code {
    match kind {
        RuntimeErrorKind::NotFound => Code::NotFound,
        RuntimeErrorKind::AlreadyExists => Code::AlreadyExists,
        RuntimeErrorKind::InvalidArgument => Code::InvalidArgument,
        RuntimeErrorKind::FailedPrecondition => Code::FailedPrecondition,
        RuntimeErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        RuntimeErrorKind::Unimplemented => Code::Unimplemented,
        RuntimeErrorKind::ResourceExhausted => Code::ResourceExhausted,
        RuntimeErrorKind::Unavailable => Code::Unavailable,
        RuntimeErrorKind::Internal => Code::Internal,
    }
}

/// The error's message followed by each cause its message does not
/// already spell out (transparent variants repeat their source's text).
pub(crate) fn full_text(err: &(dyn Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use skiff_images::digest::Digest;

    use super::*;

    #[test]
    fn each_runtime_kind_maps_to_one_code() {
        let status = runtime_error_status(RuntimeError::NotFound {
            what: "container",
            id: "abc".into(),
        });
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "container \"abc\" not found");
        let status = runtime_error_status(RuntimeError::AlreadyExists("name taken".into()));
        assert_eq!(status.code(), Code::AlreadyExists);
        assert_eq!(
            runtime_code(RuntimeErrorKind::FailedPrecondition),
            Code::FailedPrecondition
        );
        assert_eq!(
            runtime_code(RuntimeErrorKind::DeadlineExceeded),
            Code::DeadlineExceeded
        );
    }

    #[test]
    fn each_kind_maps_to_one_code() {
        let cases = [
            (ErrorKind::InvalidArgument, Code::InvalidArgument),
            (ErrorKind::NotFound, Code::NotFound),
            (ErrorKind::Unauthenticated, Code::Unauthenticated),
            (ErrorKind::PermissionDenied, Code::PermissionDenied),
            (ErrorKind::FailedPrecondition, Code::FailedPrecondition),
            (ErrorKind::ResourceExhausted, Code::ResourceExhausted),
            (ErrorKind::Unavailable, Code::Unavailable),
            (ErrorKind::DataLoss, Code::DataLoss),
            (ErrorKind::Internal, Code::Internal),
        ];
        for (kind, expected) in cases {
            assert_eq!(code(kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn statuses_carry_the_code_and_the_whole_message() {
        let not_found = image_error_status(ImageError::NotFound("busybox".into()));
        assert_eq!(not_found.code(), Code::NotFound);
        assert_eq!(
            not_found.message(),
            "image \"busybox\" not found in the image store"
        );

        let in_use = image_error_status(ImageError::InUse {
            image: Digest::sha256_of(b"config"),
            container: "c1".into(),
        });
        assert_eq!(in_use.code(), Code::FailedPrecondition);
        assert!(in_use.message().contains("in use by container c1"));

        let bad_ref: ImageError = "UPPER:x"
            .parse::<skiff_images::reference::Reference>()
            .unwrap_err()
            .into();
        let status = image_error_status(bad_ref);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("UPPER"), "{}", status.message());
    }

    #[test]
    fn causes_missing_from_the_message_are_appended() {
        let err = ImageError::Io {
            op: "write",
            path: PathBuf::from("/store/x"),
            source: std::io::Error::from_raw_os_error(libc_enospc()),
        };
        let status = image_error_status(err);
        assert_eq!(status.code(), Code::ResourceExhausted);
        // The Io variant already prints its source: it must not appear twice.
        let text = status.message();
        assert_eq!(text.matches("No space left on device").count(), 1, "{text}");
        assert!(text.starts_with("image store: write /store/x"), "{text}");
    }

    fn libc_enospc() -> i32 {
        28
    }
}
