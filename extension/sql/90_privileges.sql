-- Privileges, last: every object above exists by now.

-- Raw tables are for the extension's own functions and for administrators; readers use the API.
REVOKE ALL ON ALL TABLES IN SCHEMA fleet FROM PUBLIC;
GRANT USAGE ON SCHEMA fleet TO PUBLIC;
