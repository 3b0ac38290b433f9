-- +goose Up
-- Partials (blocks other templates render: a footer, a product card) and
-- layouts (a frame whose {{ content }} receives a message): kinds of
-- template besides messages. A message may name its layout.
ALTER TABLE templates
    ADD COLUMN kind text NOT NULL DEFAULT 'message' CHECK (kind IN ('message', 'partial', 'layout')),
    ADD COLUMN layout text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE templates DROP COLUMN layout, DROP COLUMN kind;
