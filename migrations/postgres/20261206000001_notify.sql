-- Wake-ups between nodes (src/store/wake.rs): a change to a followed table notifies its
-- channel, delivered at commit to every node's LISTEN connection. One notification per
-- statement (the payload is empty: followers read what changed themselves).
CREATE OR REPLACE FUNCTION concierge_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify(TG_ARGV[0], '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER ticket_events_notify AFTER INSERT ON ticket_events
    FOR EACH STATEMENT EXECUTE FUNCTION concierge_notify('concierge_ticket_events');

CREATE TRIGGER kb_revision_notify AFTER UPDATE ON kb_revision
    FOR EACH STATEMENT EXECUTE FUNCTION concierge_notify('concierge_knowledge');

CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION concierge_notify('concierge_outbox');
