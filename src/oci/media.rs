//! Media types regtool reads and writes (OCI image-spec v1.1 and Docker image-manifest v2.2).

/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The OCI empty descriptor's media type (the `{}` config of an artifact).
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// A Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker manifest list (multi-platform).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// A Docker schema 1 manifest (read only).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// A signed Docker schema 1 manifest (read only).
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Bytes of no stated type: the blobs of an alias.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The artifact type of an alias manifest written by regtool (docs/alias-format.md).
pub const REGTOOL_BLOBS: &str = "application/vnd.regtool.blobs.v1";
/// The layer annotation carrying the file name a blob came from.
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// The OCI image-layout annotation that names a tag in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// The Accept list for every manifest GET/HEAD. distribution 2.8.2 answers 404 for an OCI
/// manifest requested without the OCI types, and down-converts to schema 1 without any
/// (docs/registry-notes.md §1).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.5";

/// The OCI empty descriptor's content: `{}`.
pub const EMPTY_JSON: &[u8] = b"{}";

/// The largest manifest any registry accepts (distribution rejects more than 4 MiB).
pub const MAX_MANIFEST: u64 = 4 * 1024 * 1024;
