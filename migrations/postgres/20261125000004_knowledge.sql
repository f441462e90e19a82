-- The knowledge base: articles, their versions (every change is a version), every state
-- transition (who, when, comment), editable documents (synonyms, golden questions) and a
-- revision counter that every change touching search bumps, so each node's index follows.
CREATE TABLE kb_articles (
    id TEXT PRIMARY KEY,
    head_version BIGINT NOT NULL,
    live_version BIGINT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    transitions BIGINT NOT NULL
);

CREATE TABLE kb_versions (
    article_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    state TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    summary TEXT,
    questions TEXT NOT NULL,
    tags TEXT NOT NULL,
    audience TEXT NOT NULL,
    branches TEXT NOT NULL,
    effective_from TEXT,
    effective_to TEXT,
    content_hash TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    reviewer TEXT,
    reviewed_at BIGINT,
    publish_at BIGINT,
    PRIMARY KEY (article_id, version)
);
CREATE INDEX kb_versions_state ON kb_versions (state, publish_at);

CREATE TABLE kb_transitions (
    article_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    version BIGINT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL,
    comment TEXT NOT NULL,
    override_reason TEXT,
    PRIMARY KEY (article_id, seq)
);

CREATE TABLE kb_documents (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    revision BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE kb_revision (
    id BIGINT PRIMARY KEY,
    revision BIGINT NOT NULL
);
INSERT INTO kb_revision (id, revision) VALUES (1, 0);
