//! The checks that tell a user what to fix before anything is read: the server's
//! settings, the user's privileges, the tables, their columns and keys, the publication.

use postgres::Client;

use super::rows::Shape;
use crate::input::key_column;
use crate::input::Column;
use crate::model::Table;
use crate::pg::{error_text, quote_ident};

/// The two tables as the job reads them, checked.
#[derive(Debug, Clone)]
pub struct Tables {
    /// The codes' shape, then the orders'.
    pub shapes: [Shape; 2],
    /// Their names as SQL identifiers, quoted.
    pub quoted: [String; 2],
    /// Their schemas and names, as the stream names them.
    pub idents: [(String, String); 2],
}

/// Checks everything the source needs, in the order a user fixes things, and makes the
/// publication if it is missing and this user may: one clear error otherwise.
pub fn check(
    client: &mut Client,
    codes_table: &str,
    orders_table: &str,
    publication: &str,
) -> Result<Tables, String> {
    let query =
        |client: &mut Client, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]| {
            client.query(sql, params).map_err(|e| error_text(&e))
        };
    let wal_level: String = query(client, "SELECT current_setting('wal_level')", &[])?[0].get(0);
    if wal_level != "logical" {
        return Err(format!(
            "the server's wal_level is '{wal_level}', but reading changes needs 'logical': run ALTER SYSTEM SET wal_level = logical; and restart the server"
        ));
    }
    let may_replicate: bool = query(
        client,
        "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
        &[],
    )?[0]
        .get(0);
    if !may_replicate {
        let user: String = query(client, "SELECT current_user::text", &[])?[0].get(0);
        return Err(format!(
            "user {user} may not read the replication stream: run ALTER ROLE {user} WITH REPLICATION; as a superuser"
        ));
    }
    let mut shapes = Vec::new();
    let mut quoted = Vec::new();
    let mut oids = Vec::new();
    let mut idents = Vec::new();
    for (table, name) in [
        (Table::DiscountCodes, codes_table),
        (Table::Orders, orders_table),
    ] {
        let found = query(
            client,
            "SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relreplident::text, \
             n.nspname::text, c.relname::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
            &[&name],
        )?;
        let Some(row) = found.first() else {
            return Err(format!(
                "table {name} does not exist (or this user may not see it)"
            ));
        };
        let oid: postgres::types::Oid = row.get(0);
        let sql_name: String = row.get(1);
        let identity: String = row.get(2);
        idents.push((row.get::<_, String>(3), row.get::<_, String>(4)));
        let columns = query(
            client,
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&oid],
        )?;
        let names: Vec<String> = columns.iter().map(|r| r.get(0)).collect();
        let shape = Shape::new(table, name, &names)?;
        for (column, row) in shape.columns.iter().zip(&columns) {
            if let Some(column) = column {
                let sql_type: String = row.get(1);
                check_type(name, *column, &sql_type)?;
            }
        }
        let key = query(
            client,
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a \
             ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1 AND i.indisprimary",
            &[&oid],
        )?;
        let key: Vec<String> = key.iter().map(|r| r.get(0)).collect();
        let wanted = key_column(table);
        let key_is_right = key.len() == 1 && Column::from_name(&key[0]) == Some(wanted);
        if !key_is_right && identity != "f" {
            let has = if key.is_empty() {
                "no primary key".to_string()
            } else {
                format!("the primary key ({})", key.join(", "))
            };
            return Err(format!(
                "table {name} has {has}, so its deletes and updates cannot name the {} they change: run ALTER TABLE {sql_name} ADD PRIMARY KEY ({})",
                wanted.name(),
                wanted.name()
            ));
        }
        if identity == "n" {
            return Err(format!(
                "table {name} has REPLICA IDENTITY NOTHING, so its deletes are not in the stream: run ALTER TABLE {sql_name} REPLICA IDENTITY DEFAULT"
            ));
        }
        shapes.push(shape);
        quoted.push(sql_name);
        oids.push(oid);
    }
    ensure_publication(client, publication, &quoted, &oids)?;
    let [codes, orders] = <[Shape; 2]>::try_from(shapes).map_err(|_| "two tables".to_string())?;
    let [codes_sql, orders_sql] =
        <[String; 2]>::try_from(quoted).map_err(|_| "two tables".to_string())?;
    let [codes_ident, orders_ident] =
        <[(String, String); 2]>::try_from(idents).map_err(|_| "two tables".to_string())?;
    Ok(Tables {
        shapes: [codes, orders],
        quoted: [codes_sql, orders_sql],
        idents: [codes_ident, orders_ident],
    })
}

/// Only types whose text the file rules read exactly: no floats for money.
fn check_type(table: &str, column: Column, sql_type: &str) -> Result<(), String> {
    let base = sql_type.split('(').next().unwrap_or(sql_type).trim();
    let integer = ["smallint", "integer", "bigint"];
    let text = ["text", "character varying", "character", "varchar"];
    let ok = match column {
        Column::Id | Column::CustomerId | Column::ItemCt => {
            integer.contains(&base) || base == "numeric"
        }
        Column::OrderSubtotal | Column::Percentage => integer.contains(&base) || base == "numeric",
        Column::OrderTime => {
            base.starts_with("timestamp") || integer.contains(&base) || text.contains(&base)
        }
        Column::Code | Column::DiscountCode => text.contains(&base),
        Column::Op | Column::Table => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "column {table}.{} is {sql_type}, which cannot be read exactly (use an integer, numeric, text or timestamp type)",
            column.name()
        ))
    }
}

/// The publication the stream reads, holding both tables: made if absent and this user
/// may, otherwise the error says what to run.
fn ensure_publication(
    client: &mut Client,
    publication: &str,
    tables: &[String],
    oids: &[postgres::types::Oid],
) -> Result<(), String> {
    let ident = quote_ident(publication);
    let list = tables.join(", ");
    let exists = client
        .query(
            "SELECT oid FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .map_err(|e| error_text(&e))?;
    if exists.is_empty() {
        let create = format!("CREATE PUBLICATION {ident} FOR TABLE {list}");
        return client.batch_execute(&create).map_err(|e| {
            format!(
                "publication {publication} does not exist and this user cannot create it ({}): run {create}; as the tables' owner",
                error_text(&e)
            )
        });
    }
    for (table, oid) in tables.iter().zip(oids) {
        let included = client
            .query(
                "SELECT 1 FROM pg_publication p WHERE p.pubname = $1 AND (p.puballtables OR EXISTS \
                 (SELECT 1 FROM pg_publication_rel r WHERE r.prpubid = p.oid AND r.prrelid = $2))",
                &[&publication, oid],
            )
            .map_err(|e| error_text(&e))?;
        if included.is_empty() {
            return Err(format!(
                "publication {publication} does not hold table {table}: run ALTER PUBLICATION {ident} ADD TABLE {table};"
            ));
        }
    }
    Ok(())
}
