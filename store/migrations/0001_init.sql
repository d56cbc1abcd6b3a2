-- Remedy store, version 1. Applied once, in a transaction, by `Store::open`;
-- `PRAGMA user_version` records the last migration applied. Never edit a
-- released migration: add the next file.
--
-- Rows keep the full JSON of the domain object (`body`) beside the columns
-- that queries filter and sort on, so the API returns exactly what replay
-- wrote and the schema only grows when a new filter needs a column.

CREATE TABLE runs (
    id             INTEGER PRIMARY KEY,
    written_at     TEXT    NOT NULL,
    first_event_ms INTEGER,
    last_event_ms  INTEGER,
    summary        TEXT    NOT NULL
);

CREATE TABLE incidents (
    id         TEXT    PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    start_ms   INTEGER NOT NULL,
    end_ms     INTEGER,
    status     TEXT    NOT NULL,
    class      TEXT,
    confidence REAL,
    -- The list entry (`IncidentSummary`) as JSON, so a page of the list is
    -- served without decoding whole incidents.
    summary    TEXT    NOT NULL,
    body       TEXT    NOT NULL
);
CREATE INDEX incidents_by_start ON incidents(start_ms DESC, id DESC);

-- Every service an incident touches (root causes and anomalous signals), for
-- the `service` filter; the incident's start is repeated here so that a
-- filtered page is one index range scan.
CREATE TABLE incident_services (
    incident_id TEXT    NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    service     TEXT    NOT NULL,
    start_ms    INTEGER NOT NULL,
    PRIMARY KEY (service, start_ms, incident_id)
) WITHOUT ROWID;
CREATE INDEX incident_services_by_incident ON incident_services(incident_id);

CREATE TABLE anomalies (
    id          INTEGER PRIMARY KEY,
    signal      TEXT    NOT NULL,
    ts_ms       INTEGER NOT NULL,
    incident_id TEXT,
    service     TEXT,
    kind        TEXT    NOT NULL,
    score       REAL    NOT NULL,
    body        TEXT    NOT NULL,
    UNIQUE (signal, ts_ms)
);
CREATE INDEX anomalies_by_time ON anomalies(ts_ms DESC, id DESC);

CREATE TABLE actions (
    id                TEXT    PRIMARY KEY,
    incident_id       TEXT    NOT NULL,
    status            TEXT    NOT NULL,
    requires_approval INTEGER NOT NULL,
    -- 1 once a person approved or rejected it through the API: a later
    -- replay of the same data does not undo a human decision.
    decided           INTEGER NOT NULL DEFAULT 0,
    body              TEXT    NOT NULL
);
CREATE INDEX actions_by_incident ON actions(incident_id);

-- Append-only: rows are inserted, never updated or deleted.
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    action_id   TEXT    NOT NULL,
    incident_id TEXT    NOT NULL,
    ts_ms       INTEGER NOT NULL,
    decision    TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    UNIQUE (action_id, ts_ms, decision, reason)
);
CREATE INDEX audit_by_incident ON audit(incident_id, seq);

CREATE TABLE templates (
    id       TEXT    PRIMARY KEY,
    template TEXT    NOT NULL,
    count    INTEGER NOT NULL
);
CREATE INDEX templates_by_count ON templates(count DESC, id);

CREATE TABLE signals (
    key       TEXT PRIMARY KEY,
    kind      TEXT NOT NULL,
    name      TEXT NOT NULL,
    service   TEXT,
    host      TEXT,
    container TEXT
) WITHOUT ROWID;

-- One scored window of one signal: the value against its baseline band.
CREATE TABLE signal_points (
    signal   TEXT    NOT NULL,
    ts_ms    INTEGER NOT NULL,
    observed REAL    NOT NULL,
    lower    REAL    NOT NULL,
    expected REAL    NOT NULL,
    upper    REAL    NOT NULL,
    score    REAL    NOT NULL,
    alert    INTEGER NOT NULL,
    PRIMARY KEY (signal, ts_ms)
) WITHOUT ROWID;

-- Running totals behind /metrics (records read, parsed, dead-lettered by
-- reason...), summed over every run written here.
CREATE TABLE counters (
    name  TEXT    NOT NULL,
    label TEXT    NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (name, label)
) WITHOUT ROWID;
