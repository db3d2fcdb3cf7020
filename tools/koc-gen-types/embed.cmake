# Writes OUT, a C file defining kg_runtime[] with the bytes of IN (the
# helpers every generated source carries), so the generator is one binary.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" hex "${hex}")
file(WRITE ${OUT}.tmp "/* Generated from runtime.inc. */\nextern const char kg_runtime[];\nconst char kg_runtime[] = {\n${hex}0x00};\n")
file(RENAME ${OUT}.tmp ${OUT})
