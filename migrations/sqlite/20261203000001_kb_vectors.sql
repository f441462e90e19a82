-- Passage vectors of article versions (hybrid knowledge retrieval): one row per passage of
-- a version, per embedding model (a model change re-embeds; old rows stay for other nodes
-- still on the old model). `text_sha256` is the SHA-256 of the passage's text: a row whose
-- text no longer matches how the version is split into passages is stale. `vector` holds
-- `dim` little-endian f32 values (L2-normalised).
CREATE TABLE kb_vectors (
    article_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    model TEXT NOT NULL,
    passage INTEGER NOT NULL,
    kind TEXT NOT NULL,
    text_sha256 TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (article_id, version, model, passage)
);
CREATE INDEX kb_vectors_model ON kb_vectors (model);
