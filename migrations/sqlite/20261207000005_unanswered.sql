-- What the engine could not serve of a customer's words (src/dialog/engine/journal.rs,
-- `Miss`): dont_know, not_understood, out_of_scope or clarified, on the customer line that
-- asked it (masked like every line). Content staff's unanswered-question queue and the
-- reports read it through the partial index.
ALTER TABLE transcript_lines ADD COLUMN unanswered TEXT;
CREATE INDEX transcript_lines_unanswered ON transcript_lines (at) WHERE unanswered IS NOT NULL;
