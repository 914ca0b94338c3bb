# Writes ${OUT}, a C++ file defining `MigrationSet ${FUNCTION}()` in namespace ${NAMESPACE}: the
# migrations of module ${MODULE} (FILES: the NNNN_*.sql files of ${SCHEMA_DIR}, sorted, separated
# by |) as (version, name, sql), in version order. ${HEADER} declares the function. Run by the
# commands cmake/schema.cmake defines.
cmake_minimum_required(VERSION 3.25)
string(REPLACE "|" ";" files "${FILES}")
set(body "// Generated from ${SCHEMA_DIR}/*.sql by cmake/embed_migrations.cmake. Do not edit.\n")
string(APPEND body "#include \"${HEADER}\"\n\nnamespace ${NAMESPACE} {\n\n")
string(APPEND body "MigrationSet ${FUNCTION}() {\n  return {\"${MODULE}\",\n          {\n")
set(seen)
foreach(f ${files})
  get_filename_component(name ${f} NAME_WE)
  string(SUBSTRING ${name} 0 4 version)
  math(EXPR version "${version}")
  if(version IN_LIST seen)
    message(FATAL_ERROR "${SCHEMA_DIR}: two migrations numbered ${version}")
  endif()
  list(APPEND seen ${version})
  file(READ ${f} sql)
  string(APPEND body "              {${version}, \"${name}\", R\"chartflow_sql(${sql})chartflow_sql\"},\n")
endforeach()
string(APPEND body "          }};\n}\n\n}  // namespace ${NAMESPACE}\n")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
