# Build step (net/CMakeLists.txt): IN, the OpenAPI document, becomes OUT, a
# C file defining openapi_json[] (the bytes, NUL-terminated) and
# openapi_json_len, served at GET /openapi.json (SPEC §11).
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT}.tmp "#include <stddef.h>\nconst char openapi_json[] = {${bytes}0};\nconst size_t openapi_json_len = ${len};\n")
file(RENAME ${OUT}.tmp ${OUT})
