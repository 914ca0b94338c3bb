# Migrations are compiled into the binary so it never depends on where schema/ lives at run time.
# Each module's folder becomes one generated source defining its MigrationSet:
#   ENGINE_MIGRATIONS_CPP  schema/engine/ -> chartflow::store::embedded_migrations()     (engine_store)
#   CHART_MIGRATIONS_CPP   schema/charts/ -> chartflow::handlers::chart_migrations()    (chartflow_handlers)
function(chartflow_embed_migrations out_var folder module namespace function header)
  file(GLOB sql CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/schema/${folder}/[0-9][0-9][0-9][0-9]_*.sql)
  list(SORT sql)
  # The file list is on the command line, so a removed migration regenerates the source too.
  string(REPLACE ";" "|" files "${sql}")
  set(out ${CMAKE_BINARY_DIR}/generated/${folder}_migrations.cpp)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} "-DFILES=${files}" -DSCHEMA_DIR=schema/${folder}
            -DMODULE=${module} -DNAMESPACE=${namespace}
            -DFUNCTION=${function} -DHEADER=${header}
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_migrations.cmake
    DEPENDS ${sql} ${PROJECT_SOURCE_DIR}/cmake/embed_migrations.cmake
    COMMENT "Embedding the ${module} migrations (schema/${folder}/)"
    VERBATIM)
  set(${out_var} ${out} PARENT_SCOPE)
endfunction()

chartflow_embed_migrations(ENGINE_MIGRATIONS_CPP engine engine chartflow::store embedded_migrations
                           store/migrations.hpp)
chartflow_embed_migrations(CHART_MIGRATIONS_CPP charts charts chartflow::handlers chart_migrations
                           handlers/chart_migrations.hpp)
