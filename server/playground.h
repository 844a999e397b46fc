// The playground page (web/index.html), embedded in the binary at build time.
#pragma once

namespace sculpt {

const char* PlaygroundHtml();

}  // namespace sculpt
