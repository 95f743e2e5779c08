// Compiles the C++ wrapper header alone as C++17 (-Wall -Wextra -Werror -pedantic).
#include "wtdatagram.hpp"

int wtd_header_hpp_compiles() { return static_cast<int>(sizeof(wtd::bytes_view)); }
