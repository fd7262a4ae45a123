-- Only transactions opened by sms_events.store.appending() may insert events: they announce
-- themselves before their first write, and readers of the whole store wait only for announced
-- transactions (see store.py). An insert from any other transaction could commit below a
-- reader's horizon after the reader moved past it, so it is refused outright.
-- depends: events_0001_event_store

CREATE OR REPLACE FUNCTION events_require_announced_appender() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('sms_events.appender', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'events may only be appended in a transaction opened by appending()'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'use "async with sms_events.store.appending(conn):" instead of '
                         'conn.transaction(), so that readers of all events wait for it';
    END IF;
    RETURN NULL;
END $$;

-- Once per statement, not per row: one current_setting() per insert statement.
DROP TRIGGER IF EXISTS events_require_announced_appender ON events;
CREATE TRIGGER events_require_announced_appender BEFORE INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_require_announced_appender();
