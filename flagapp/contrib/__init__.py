"""Optional integrations with other Django packages; each is an app you opt into."""
