import java.sql.*;

/**
 * What JDBC tools (DBeaver, Metabase, ...) ask of DatabaseMetaData, printed
 * one fact a line for TestPostgresFaceJDBC: every table, every column with
 * its type, and whether getPrimaryKeys, getIndexInfo, getTypeInfo and
 * getFunctions answer. Arguments: URL USER PASSWORD.
 */
public class JdbcMeta {
  public static void main(String[] args) throws Exception {
    try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
      DatabaseMetaData md = c.getMetaData();
      System.out.println("product " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());
      try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE"})) {
        while (rs.next()) {
          System.out.println("table " + rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME"));
        }
      }
      try (ResultSet rs = md.getColumns(null, null, "logs", "%")) {
        while (rs.next()) {
          System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME") + " " + rs.getInt("DATA_TYPE"));
        }
      }
      try (ResultSet rs = md.getPrimaryKeys(null, null, "logs")) {
        int n = 0;
        while (rs.next()) n++;
        System.out.println("primary keys " + n);
      }
      try (ResultSet rs = md.getIndexInfo(null, null, "logs", false, true)) {
        int n = 0;
        while (rs.next()) n++;
        System.out.println("indexes " + n);
      }
      try (ResultSet rs = md.getTypeInfo()) {
        int n = 0;
        while (rs.next()) n++;
        System.out.println("types " + (n > 0 ? "some" : "none"));
      }
      try (ResultSet rs = md.getFunctions(null, null, "%")) {
        while (rs.next()) {}
        System.out.println("functions ok");
      }
      try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("select count(*) from logs")) {
        rs.next();
        System.out.println("count " + rs.getLong(1) + " as " + rs.getMetaData().getColumnName(1));
      }
    }
  }
}
