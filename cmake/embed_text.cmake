# Writes a C++ file defining `const char* const ${SYMBOL}` in namespace ${NAMESPACE} holding the
# text of ${IN}, so a file chartflow runs (the Python adapter) ships inside the binary.
file(READ ${IN} text)
file(WRITE ${OUT}.tmp "// Generated from ${IN} by cmake/embed_text.cmake. Do not edit.\nnamespace ${NAMESPACE} {\nextern const char* const ${SYMBOL};\nconst char* const ${SYMBOL} = R\"chartflow_text(${text})chartflow_text\";\n}  // namespace ${NAMESPACE}\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
