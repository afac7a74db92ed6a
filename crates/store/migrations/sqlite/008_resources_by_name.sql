-- Resources found by name alone, in any account and region: an OAuth
-- client by its id, on every token request.
CREATE INDEX resources_by_name ON resources (kind, name);
