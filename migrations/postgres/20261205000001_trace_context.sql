-- The W3C trace context (`traceparent`) of the turn that caused an outbox row's event
-- (src/telemetry/trace.rs): the webhook delivery continues that trace and sends it on.
-- NULL when traces are off or the event came from a background job.
ALTER TABLE outbox ADD COLUMN traceparent TEXT;
