package pgwire

import (
	"fmt"
	"sort"
	"strings"
)

// pgType is one row of the face's pg_type, and how DuckDB's types map to it
// (the same mapping oidFor makes for result columns).
type pgType struct {
	oid      int
	name     string
	format   string // format_type's answer
	length   int
	category string
	duck     []string // DuckDB type names (duckdb_columns().data_type) of this type
}

var pgTypes = []pgType{
	{oidBool, "bool", "boolean", 1, "B", []string{"BOOLEAN"}},
	{oidBytea, "bytea", "bytea", -1, "U", []string{"BLOB"}},
	{oidName, "name", "name", 64, "S", nil},
	{oidInt8, "int8", "bigint", 8, "N", []string{"BIGINT", "UINTEGER"}},
	{oidInt2, "int2", "smallint", 2, "N", []string{"SMALLINT", "TINYINT", "UTINYINT"}},
	{oidInt4, "int4", "integer", 4, "N", []string{"INTEGER", "USMALLINT"}},
	{oidText, "text", "text", -1, "S", []string{"VARCHAR"}},
	{26, "oid", "oid", 4, "N", nil},
	{oidJSON, "json", "json", -1, "U", []string{"JSON"}},
	{oidFloat4, "float4", "real", 4, "N", []string{"FLOAT"}},
	{oidFloat8, "float8", "double precision", 8, "N", []string{"DOUBLE"}},
	{oidVarchar, "varchar", "character varying", -1, "S", nil},
	{oidDate, "date", "date", 4, "D", []string{"DATE"}},
	{oidTime, "time", "time without time zone", 8, "D", []string{"TIME"}},
	{oidTimestamp, "timestamp", "timestamp without time zone", 8, "D", []string{"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}},
	{oidTimestampTZ, "timestamptz", "timestamp with time zone", 8, "D", []string{"TIMESTAMP WITH TIME ZONE"}},
	{oidInterval, "interval", "interval", 16, "T", []string{"INTERVAL"}},
	{oidNumeric, "numeric", "numeric", -1, "N", []string{"UBIGINT", "HUGEINT", "UHUGEINT", "BIGNUM"}},
	{oidUUID, "uuid", "uuid", 16, "U", []string{"UUID"}},
	{oidJSONB, "jsonb", "jsonb", -1, "U", nil},
}

// Namespace OIDs of the face (main's is DuckDB's own schema OID).
const (
	oidPgCatalog  = 11
	oidInfoSchema = 13
	oidOwner      = 10 // the one role, owner of everything
)

// CatalogSQL is the DDL of the Postgres face (see face.go): the engine runs
// it once at start (query.Config.SetupSQL). Every relation is a view over
// DuckDB's own catalog functions, so it follows the tables as they come
// and go.
func CatalogSQL() []string {
	pg := FaceDB + ".pg."
	info := FaceDB + ".info."
	var typeOID, format, typeRows []string
	for _, t := range pgTypes {
		for _, d := range t.duck {
			typeOID = append(typeOID, fmt.Sprintf("WHEN '%s' THEN %d", d, t.oid))
		}
		if t.oid != oidNumeric {
			format = append(format, fmt.Sprintf("WHEN %d THEN '%s'", t.oid, t.format))
		}
		typeRows = append(typeRows, fmt.Sprintf("(%d, '%s', %d, '%s')", t.oid, t.name, t.length, t.category))
	}
	settings := make([]string, 0, len(pgSettings))
	for k, v := range pgSettings {
		settings = append(settings, fmt.Sprintf("(%s, %s)", sqlQuote(k), sqlQuote(v)))
	}
	sort.Strings(settings)
	tables := pg + "sluice_tables"
	ddl := []string{
		"ATTACH ':memory:' AS " + FaceDB,
		"CREATE SCHEMA " + FaceDB + ".pg",
		"CREATE SCHEMA " + FaceDB + ".info",
		// The engine's tables: the views of schema main (the temporary
		// views a statement binds are in database temp).
		"CREATE VIEW " + tables + " AS SELECT view_oid AS oid, view_name AS relname, schema_oid AS nsp, comment FROM duckdb_views() WHERE database_name = 'memory' AND schema_name = 'main' AND NOT internal",
		"CREATE VIEW " + pg + "sluice_columns AS SELECT c.table_oid, c.table_name, c.column_name, c.column_index, c.is_nullable, c.data_type, c.numeric_precision, c.numeric_scale, c.comment, " +
			"CASE WHEN c.data_type LIKE 'DECIMAL%' THEN 1700 ELSE CASE c.data_type " + strings.Join(typeOID, " ") + " ELSE 25 END END AS typid " +
			"FROM duckdb_columns() c WHERE c.database_name = 'memory' AND c.schema_name = 'main' AND NOT c.internal",
		"CREATE VIEW " + pg + "pg_settings_values(name, setting) AS VALUES " + strings.Join(settings, ", "),
	}
	// Macros before the views that call them (a view binds when created).
	ddl = append(ddl, macros(pg, format)...)
	ddl = append(ddl,
		"CREATE VIEW "+pg+"pg_type AS SELECT oid::BIGINT AS oid, typname, "+itoa(oidPgCatalog)+"::BIGINT AS typnamespace, "+itoa(oidOwner)+"::BIGINT AS typowner, typlen::SMALLINT AS typlen, "+
			"typlen > 0 AS typbyval, 'b' AS typtype, typcategory, false AS typispreferred, true AS typisdefined, ',' AS typdelim, 0::BIGINT AS typrelid, 0::BIGINT AS typelem, 0::BIGINT AS typarray, "+
			"typname || 'in' AS typinput, typname || 'out' AS typoutput, typname || 'recv' AS typreceive, typname || 'send' AS typsend, '-' AS typmodin, '-' AS typmodout, '-' AS typanalyze, "+
			"'i' AS typalign, 'p' AS typstorage, false AS typnotnull, 0::BIGINT AS typbasetype, -1 AS typtypmod, 0 AS typndims, 0::BIGINT AS typcollation, "+
			"NULL::VARCHAR AS typdefaultbin, NULL::VARCHAR AS typdefault, NULL::VARCHAR[] AS typacl FROM (VALUES "+strings.Join(typeRows, ", ")+") t(oid, typname, typlen, typcategory)",
		"CREATE VIEW "+pg+"pg_namespace AS SELECT * FROM (SELECT oid, schema_name AS nspname, "+itoa(oidOwner)+"::BIGINT AS nspowner, NULL::VARCHAR[] AS nspacl FROM duckdb_schemas() WHERE database_name = 'memory' AND schema_name = 'main' "+
			"UNION ALL SELECT "+itoa(oidPgCatalog)+", 'pg_catalog', "+itoa(oidOwner)+", NULL UNION ALL SELECT "+itoa(oidInfoSchema)+", 'information_schema', "+itoa(oidOwner)+", NULL)",
		"CREATE VIEW "+pg+"pg_class AS SELECT t.oid, t.relname, t.nsp AS relnamespace, 0::BIGINT AS reltype, 0::BIGINT AS reloftype, "+itoa(oidOwner)+"::BIGINT AS relowner, "+
			"0::BIGINT AS relam, 0::BIGINT AS relfilenode, 0::BIGINT AS reltablespace, 0 AS relpages, -1::FLOAT AS reltuples, 0 AS relallvisible, 0::BIGINT AS reltoastrelid, "+
			"false AS relhasindex, false AS relisshared, 'p' AS relpersistence, 'r' AS relkind, (SELECT count(*) FROM "+pg+"sluice_columns c WHERE c.table_oid = t.oid)::SMALLINT AS relnatts, "+
			"0::SMALLINT AS relchecks, false AS relhasrules, false AS relhastriggers, false AS relhassubclass, false AS relrowsecurity, false AS relforcerowsecurity, "+
			"true AS relispopulated, 'd' AS relreplident, false AS relispartition, 0::BIGINT AS relrewrite, 0::BIGINT AS relfrozenxid, 0::BIGINT AS relminmxid, "+
			"NULL::VARCHAR[] AS relacl, NULL::VARCHAR[] AS reloptions, NULL::VARCHAR AS relpartbound FROM "+tables+" t",
		"CREATE VIEW "+pg+"pg_attribute AS SELECT table_oid AS attrelid, column_name AS attname, typid AS atttypid, -1 AS attstattarget, "+
			"(SELECT typlen FROM "+pg+"pg_type y WHERE y.oid = typid)::SMALLINT AS attlen, column_index::SMALLINT AS attnum, 0 AS attndims, -1 AS attcacheoff, "+
			"CASE WHEN typid = 1700 AND numeric_precision IS NOT NULL THEN ((numeric_precision << 16) | numeric_scale) + 4 ELSE -1 END AS atttypmod, "+
			"false AS attbyval, 'x' AS attalign, 'p' AS attstorage, '' AS attcompression, NOT is_nullable AS attnotnull, false AS atthasdef, false AS atthasmissing, "+
			"'' AS attidentity, '' AS attgenerated, false AS attisdropped, true AS attislocal, 0 AS attinhcount, 0::BIGINT AS attcollation, "+
			"NULL::VARCHAR[] AS attacl, NULL::VARCHAR[] AS attoptions, NULL::VARCHAR[] AS attfdwoptions, NULL::VARCHAR AS attmissingval FROM "+pg+"sluice_columns",
		"CREATE VIEW "+pg+"pg_database AS SELECT 1::BIGINT AS oid, 'sluice' AS datname, "+itoa(oidOwner)+"::BIGINT AS datdba, 6 AS encoding, 'c' AS datlocprovider, false AS datistemplate, "+
			"true AS datallowconn, -1 AS datconnlimit, 0::BIGINT AS datfrozenxid, 0::BIGINT AS datminmxid, 1663::BIGINT AS dattablespace, 'C' AS datcollate, 'C' AS datctype, "+
			"NULL::VARCHAR AS daticulocale, NULL::VARCHAR AS daticurules, NULL::VARCHAR AS datcollversion, NULL::VARCHAR[] AS datacl",
		"CREATE VIEW "+pg+"pg_roles AS SELECT 'sluice' AS rolname, false AS rolsuper, false AS rolinherit, false AS rolcreaterole, false AS rolcreatedb, true AS rolcanlogin, "+
			"false AS rolreplication, -1 AS rolconnlimit, '********' AS rolpassword, NULL::TIMESTAMPTZ AS rolvaliduntil, false AS rolbypassrls, NULL::VARCHAR[] AS rolconfig, "+itoa(oidOwner)+"::BIGINT AS oid",
		"CREATE VIEW "+pg+"pg_authid AS SELECT * FROM "+pg+"pg_roles",
		"CREATE VIEW "+pg+"pg_user AS SELECT 'sluice' AS usename, "+itoa(oidOwner)+"::BIGINT AS usesysid, false AS usecreatedb, false AS usesuper, false AS userepl, false AS usebypassrls, '********' AS passwd, NULL::TIMESTAMPTZ AS valuntil, NULL::VARCHAR[] AS useconfig",
		"CREATE VIEW "+pg+"pg_description AS SELECT oid AS objoid, "+FaceDB+".pg.to_regclass('pg_class') AS classoid, 0 AS objsubid, comment AS description FROM "+tables+" WHERE comment IS NOT NULL",
		"CREATE VIEW "+pg+"pg_settings AS SELECT name, setting, NULL::VARCHAR AS unit, 'Preset Options' AS category, '' AS short_desc, 'internal' AS context, 'string' AS vartype, 'default' AS source FROM "+pg+"pg_settings_values",
		"CREATE VIEW "+pg+"pg_tables AS SELECT 'main' AS schemaname, relname AS tablename, 'sluice' AS tableowner, NULL::VARCHAR AS tablespace, false AS hasindexes, false AS hasrules, false AS hastriggers, false AS rowsecurity FROM "+tables,
		"CREATE VIEW "+pg+"pg_stat_user_tables AS SELECT oid AS relid, 'main' AS schemaname, relname, NULL::BIGINT AS n_live_tup, NULL::BIGINT AS n_dead_tup FROM "+tables,
		"CREATE VIEW "+pg+"pg_am AS SELECT 2::BIGINT AS oid, 'heap' AS amname, 'heap_tableam_handler' AS amhandler, 't' AS amtype",
	)
	// Relations Postgres has and sluice has nothing in: empty, with the
	// columns clients read.
	for name, cols := range map[string]string{
		"pg_index": "indexrelid BIGINT, indrelid BIGINT, indnatts SMALLINT, indnkeyatts SMALLINT, indisunique BOOLEAN, indnullsnotdistinct BOOLEAN, indisprimary BOOLEAN, indisexclusion BOOLEAN, " +
			"indimmediate BOOLEAN, indisclustered BOOLEAN, indisvalid BOOLEAN, indcheckxmin BOOLEAN, indisready BOOLEAN, indislive BOOLEAN, indisreplident BOOLEAN, indkey SMALLINT[], " +
			"indcollation BIGINT[], indclass BIGINT[], indoption SMALLINT[], indexprs VARCHAR, indpred VARCHAR",
		"pg_constraint": "oid BIGINT, conname VARCHAR, connamespace BIGINT, contype VARCHAR, condeferrable BOOLEAN, condeferred BOOLEAN, convalidated BOOLEAN, conrelid BIGINT, contypid BIGINT, " +
			"conindid BIGINT, conparentid BIGINT, confrelid BIGINT, confupdtype VARCHAR, confdeltype VARCHAR, confmatchtype VARCHAR, conislocal BOOLEAN, coninhcount INTEGER, connoinherit BOOLEAN, " +
			"conkey SMALLINT[], confkey SMALLINT[], conpfeqop BIGINT[], conppeqop BIGINT[], conffeqop BIGINT[], conexclop BIGINT[], conbin VARCHAR",
		"pg_proc": "oid BIGINT, proname VARCHAR, pronamespace BIGINT, proowner BIGINT, prolang BIGINT, prokind VARCHAR, proretset BOOLEAN, prorettype BIGINT, proargtypes VARCHAR, " +
			"proargnames VARCHAR[], proargmodes VARCHAR[], proallargtypes BIGINT[], prosrc VARCHAR, proisagg BOOLEAN, proiswindow BOOLEAN",
		"pg_inherits":              "inhrelid BIGINT, inhparent BIGINT, inhseqno INTEGER, inhdetachpending BOOLEAN",
		"pg_policy":                "oid BIGINT, polname VARCHAR, polrelid BIGINT, polcmd VARCHAR, polpermissive BOOLEAN, polroles BIGINT[], polqual VARCHAR, polwithcheck VARCHAR",
		"pg_statistic_ext":         "oid BIGINT, stxrelid BIGINT, stxname VARCHAR, stxnamespace BIGINT, stxowner BIGINT, stxstattarget INTEGER, stxkeys SMALLINT[], stxkind VARCHAR[], stxexprs VARCHAR",
		"pg_publication":           "oid BIGINT, pubname VARCHAR, pubowner BIGINT, puballtables BOOLEAN, pubinsert BOOLEAN, pubupdate BOOLEAN, pubdelete BOOLEAN, pubtruncate BOOLEAN, pubviaroot BOOLEAN",
		"pg_publication_rel":       "oid BIGINT, prpubid BIGINT, prrelid BIGINT, prqual VARCHAR, prattrs SMALLINT[]",
		"pg_publication_namespace": "oid BIGINT, pnpubid BIGINT, pnnspid BIGINT",
		"pg_trigger":               "oid BIGINT, tgrelid BIGINT, tgparentid BIGINT, tgname VARCHAR, tgfoid BIGINT, tgtype SMALLINT, tgenabled VARCHAR, tgisinternal BOOLEAN, tgconstraint BIGINT",
		"pg_rewrite":               "oid BIGINT, rulename VARCHAR, ev_class BIGINT, ev_type VARCHAR, ev_enabled VARCHAR, is_instead BOOLEAN",
		"pg_partitioned_table":     "partrelid BIGINT, partstrat VARCHAR, partnatts SMALLINT, partdefid BIGINT, partattrs SMALLINT[]",
		"pg_foreign_table":         "ftrelid BIGINT, ftserver BIGINT, ftoptions VARCHAR[]",
		"pg_attrdef":               "oid BIGINT, adrelid BIGINT, adnum SMALLINT, adbin VARCHAR",
		"pg_views":                 "schemaname VARCHAR, viewname VARCHAR, viewowner VARCHAR, definition VARCHAR",
		"pg_matviews":              "schemaname VARCHAR, matviewname VARCHAR, matviewowner VARCHAR, tablespace VARCHAR, hasindexes BOOLEAN, ispopulated BOOLEAN, definition VARCHAR",
		"pg_extension":             "oid BIGINT, extname VARCHAR, extowner BIGINT, extnamespace BIGINT, extrelocatable BOOLEAN, extversion VARCHAR",
		"pg_enum":                  "oid BIGINT, enumtypid BIGINT, enumsortorder FLOAT, enumlabel VARCHAR",
		"pg_range":                 "rngtypid BIGINT, rngsubtype BIGINT, rngmultitypid BIGINT",
		"pg_collation":             "oid BIGINT, collname VARCHAR, collnamespace BIGINT, collowner BIGINT, collprovider VARCHAR, collisdeterministic BOOLEAN, collencoding INTEGER, collcollate VARCHAR, collctype VARCHAR",
		"pg_opclass":               "oid BIGINT, opcmethod BIGINT, opcname VARCHAR, opcnamespace BIGINT, opcowner BIGINT, opcfamily BIGINT, opcintype BIGINT, opcdefault BOOLEAN, opckeytype BIGINT",
		"pg_tablespace":            "oid BIGINT, spcname VARCHAR, spcowner BIGINT, spcacl VARCHAR[], spcoptions VARCHAR[]",
	} {
		ddl = append(ddl, emptyView(pg+name, cols))
	}
	ddl = append(ddl, infoSchema(pg, info)...)
	return ddl
}

// settingCase is current_setting's body: a CASE over pgSettings.
func settingCase() string {
	names := make([]string, 0, len(pgSettings))
	for k := range pgSettings {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("CASE lower(setting_name)")
	for _, k := range names {
		b.WriteString(" WHEN " + sqlQuote(k) + " THEN " + sqlQuote(pgSettings[k]))
	}
	b.WriteString(" END")
	return b.String()
}

func itoa(n int) string { return fmt.Sprint(n) }

func emptyView(name, cols string) string {
	var sel []string
	for _, c := range strings.Split(cols, ", ") {
		n, typ, _ := strings.Cut(c, " ")
		sel = append(sel, "CAST(NULL AS "+typ+") AS "+n)
	}
	return "CREATE VIEW " + name + " AS SELECT " + strings.Join(sel, ", ") + " WHERE false"
}

// macros are the face's functions.
func macros(pg string, format []string) []string {
	m := func(sig, body string) string { return "CREATE MACRO " + pg + sig + " AS " + body }
	return []string{
		m("version()", "'PostgreSQL "+pgSettings["server_version"]+" (sluice) on x86_64-pc-linux-gnu, compiled by Go, 64-bit'"),
		m(`"current_user"(u)`, "u"),
		m("current_database()", "'sluice'"),
		m("current_schema()", "'main'"),
		m("current_schemas(implicit)", "CASE WHEN implicit THEN ['pg_catalog', 'main'] ELSE ['main'] END"),
		m("pg_get_userbyid(id)", "'sluice'"),
		m("quote_ident(s)", `CASE WHEN regexp_full_match(s, '[a-z_][a-z0-9_$]*') THEN s ELSE '"' || replace(s, '"', '""') || '"' END`),
		m("format_type(oid, typmod)", "CASE WHEN oid = 1700 AND typmod > 4 THEN 'numeric(' || ((typmod - 4) >> 16) || ',' || ((typmod - 4) & 65535) || ')' WHEN oid = 1700 THEN 'numeric' ELSE CASE oid "+
			strings.Join(format, " ")+" ELSE '???' END END"),
		m("pg_table_is_visible(oid)", "true"),
		m("pg_type_is_visible(oid)", "true"),
		m("pg_function_is_visible(oid)", "true"),
		m("current_setting(setting_name, missing_ok := false)", settingCase()), // no subquery: it may be a table function's argument,
		m("pg_encoding_to_char(e)", "CASE WHEN e = 6 THEN 'UTF8' ELSE 'SQL_ASCII' END"),
		m("obj_description(obj, cat := NULL)", "(SELECT comment FROM "+pg+"sluice_tables t WHERE t.oid = obj)"),
		m("col_description(rel, num)", "(SELECT comment FROM "+pg+"sluice_columns c WHERE c.table_oid = rel AND c.column_index = num)"),
		m("pg_get_expr(e, rel, pretty := false)", "NULL::VARCHAR"),
		m("pg_get_indexdef(i, c := 0, pretty := false)", "NULL::VARCHAR"),
		m("pg_get_constraintdef(c, pretty := false)", "NULL::VARCHAR"),
		m("pg_get_viewdef(v, pretty := false)", "NULL::VARCHAR"),
		m("pg_get_function_identity_arguments(f)", "''"),
		m("pg_get_statisticsobjdef_columns(o)", "NULL::VARCHAR"),
		m("pg_get_statisticsobjdef_expressions(o)", "NULL::VARCHAR[]"),
		m("pg_get_partkeydef(r)", "NULL::VARCHAR"),
		m("pg_get_triggerdef(t, pretty := false)", "NULL::VARCHAR"),
		m("pg_get_ruledef(r, pretty := false)", "NULL::VARCHAR"),
		m("pg_relation_is_publishable(r)", "false"),
		m("pg_get_serial_sequence(t, c)", "NULL::VARCHAR"),
		m("parse_ident(s, strict := true)", "string_split(s, '.')"), // quoted names holding dots aside
		m("pg_get_function_result(f)", "NULL::VARCHAR"),
		m("pg_get_function_arguments(f)", "NULL::VARCHAR"),
		m("pg_collation_is_visible(c)", "true"),
		m("to_regtype(type_name)", "(SELECT oid FROM (VALUES "+typeNames()+") t(oid, typname) WHERE t.typname = regexp_replace(type_name, '^pg_catalog\\.', ''))::BIGINT"),
		m("to_regclass(rel)", "coalesce((SELECT t.oid FROM "+pg+"sluice_tables t WHERE t.relname = regexp_replace(rel, '^(pg_catalog|main)\\.', '')), "+
			"hash(rel) % 1000000 + 1000000)::BIGINT"),
		m("has_table_privilege(a, b := NULL, c := NULL)", "true"),
		m("has_schema_privilege(a, b := NULL, c := NULL)", "true"),
		m("has_database_privilege(a, b := NULL, c := NULL)", "true"),
		m("pg_relation_size(r, f := NULL)", "0::BIGINT"),
		m("pg_total_relation_size(r)", "0::BIGINT"),
		m("pg_table_size(r)", "0::BIGINT"),
		m("pg_backend_pid()", "0"),
		m("pg_postmaster_start_time()", "TIMESTAMPTZ '2000-01-01 00:00:00+00'"),
		m("txid_current()", "0::BIGINT"),
		m("pg_is_in_recovery()", "false"),
		m("array_lower(a, d)", "CASE WHEN len(a) > 0 THEN 1 END"),
		m("array_upper(a, d)", "CASE WHEN len(a) > 0 THEN len(a) END"),
		"CREATE MACRO " + pg + "pg_get_keywords() AS TABLE SELECT keyword_name AS word, 'U' AS catcode, keyword_category AS catdesc FROM duckdb_keywords()",
	}
}

// infoSchema is the face's information_schema: the engine's tables as
// base tables of schema main, in database sluice.
func infoSchema(pg, info string) []string {
	return []string{
		"CREATE VIEW " + info + "tables AS SELECT 'sluice' AS table_catalog, 'main' AS table_schema, relname AS table_name, 'BASE TABLE' AS table_type, " +
			"NULL::VARCHAR AS self_referencing_column_name, NULL::VARCHAR AS reference_generation, NULL::VARCHAR AS user_defined_type_catalog, NULL::VARCHAR AS user_defined_type_schema, " +
			"NULL::VARCHAR AS user_defined_type_name, 'NO' AS is_insertable_into, 'NO' AS is_typed, NULL::VARCHAR AS commit_action FROM " + pg + "sluice_tables",
		"CREATE VIEW " + info + "columns AS SELECT 'sluice' AS table_catalog, 'main' AS table_schema, c.table_name, c.column_name, c.column_index AS ordinal_position, " +
			"NULL::VARCHAR AS column_default, CASE WHEN c.is_nullable THEN 'YES' ELSE 'NO' END AS is_nullable, " +
			"CASE WHEN c.typid = 1700 THEN 'numeric' ELSE (SELECT format FROM (VALUES " + formatRows() + ") f(oid, format) WHERE f.oid = c.typid) END AS data_type, " +
			"NULL::INTEGER AS character_maximum_length, NULL::INTEGER AS character_octet_length, c.numeric_precision, 10 AS numeric_precision_radix, c.numeric_scale, " +
			"NULL::INTEGER AS datetime_precision, 'sluice' AS udt_catalog, 'pg_catalog' AS udt_schema, (SELECT typname FROM " + pg + "pg_type y WHERE y.oid = c.typid) AS udt_name, " +
			"'NO' AS is_identity, 'NEVER' AS is_generated, 'NO' AS is_updatable FROM " + pg + "sluice_columns c",
		"CREATE VIEW " + info + "schemata AS SELECT 'sluice' AS catalog_name, nspname AS schema_name, 'sluice' AS schema_owner FROM " + pg + "pg_namespace",
		// Postgres's set-returning _pg_expandarray, as one struct: JDBC's
		// getPrimaryKeys calls it on pg_index, which has no row.
		"CREATE MACRO " + info + "_pg_expandarray(arr) AS {'x': arr[1], 'n': 1}",
		emptyView(info+"views", "table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR, view_definition VARCHAR"),
		emptyView(info+"table_constraints", "constraint_catalog VARCHAR, constraint_schema VARCHAR, constraint_name VARCHAR, table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR, constraint_type VARCHAR"),
		emptyView(info+"key_column_usage", "constraint_catalog VARCHAR, constraint_schema VARCHAR, constraint_name VARCHAR, table_catalog VARCHAR, table_schema VARCHAR, table_name VARCHAR, column_name VARCHAR, ordinal_position INTEGER"),
		emptyView(info+"routines", "routine_catalog VARCHAR, routine_schema VARCHAR, routine_name VARCHAR, routine_type VARCHAR, data_type VARCHAR"),
	}
}

func typeNames() string {
	var rows []string
	for _, t := range pgTypes {
		rows = append(rows, fmt.Sprintf("(%d, '%s')", t.oid, t.name))
	}
	return strings.Join(rows, ", ")
}

func formatRows() string {
	var rows []string
	for _, t := range pgTypes {
		rows = append(rows, fmt.Sprintf("(%d, '%s')", t.oid, t.format))
	}
	return strings.Join(rows, ", ")
}
