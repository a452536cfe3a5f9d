-- The voicemail inbox: who owns each voicemail. Every call that reached voicemail is an
-- item (new while it has no row here or an empty one); the voicemail itself stays on the
-- call. assigned_to keeps the agent id after the agent is removed, like call history.
CREATE TABLE voicemail_inbox (
    call_sid     TEXT PRIMARY KEY REFERENCES calls (call_sid),
    assigned_to  TEXT,
    assigned_at  TEXT,
    done_at      TEXT,
    done_by      TEXT,
    CHECK ((assigned_to IS NULL) = (assigned_at IS NULL)),
    CHECK ((done_at IS NULL) = (done_by IS NULL))
) STRICT;
CREATE INDEX voicemail_inbox_assigned_to ON voicemail_inbox (assigned_to) WHERE assigned_to IS NOT NULL;
-- The inbox newest first.
CREATE INDEX calls_voicemails ON calls (voicemail_started_at DESC, call_sid DESC)
    WHERE voicemail_started_at IS NOT NULL;

-- For people's own SQL: every voicemail with its owner and state.
CREATE VIEW report_voicemails AS
SELECT c.call_sid, c.from_number, c.voicemail_started_at AS left_at,
       c.voicemail_duration_seconds AS duration_seconds,
       c.voicemail_transcription AS transcription, c.voicemail_recording_url AS recording_url,
       CASE WHEN v.done_at IS NOT NULL THEN 'done'
            WHEN v.assigned_to IS NOT NULL THEN 'assigned' ELSE 'new' END AS state,
       v.assigned_to, a.name AS assigned_to_name, v.assigned_at, v.done_at, v.done_by
FROM calls c
LEFT JOIN voicemail_inbox v ON v.call_sid = c.call_sid
LEFT JOIN agents a ON a.id = v.assigned_to
WHERE c.voicemail_started_at IS NOT NULL;
