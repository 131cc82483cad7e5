#include "json.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "errors.h"

namespace mlipc {

const Json* Json::find(const std::string& key) const {
    for (const auto& [k, v] : members)
        if (k == key) return &v;
    return nullptr;
}

namespace {

class Parser {
public:
    Parser(const std::string& t, const std::string& w) : s_(t), where_(w) {}

    Json document() {
        Json v = value();
        skip();
        if (p_ < s_.size()) fail("unexpected text after the JSON value");
        return v;
    }

private:
    const std::string& s_;
    const std::string& where_;
    size_t p_ = 0;
    int line_ = 1;

    [[noreturn]] void fail(const std::string& what) const {
        throw format_error(where_ + ":" + std::to_string(line_) + ": " + what);
    }
    void skip() {
        while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\r' || s_[p_] == '\n'))
            line_ += s_[p_++] == '\n';
    }
    bool eat(char c) {
        skip();
        if (p_ < s_.size() && s_[p_] == c) {
            ++p_;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!eat(c)) fail(std::string("expected '") + c + "'");
    }
    bool word(const char* w) {
        const std::string k(w);
        if (s_.compare(p_, k.size(), k) != 0) return false;
        p_ += k.size();
        return true;
    }

    std::string string() {
        expect('"');
        std::string out;
        while (p_ < s_.size() && s_[p_] != '"') {
            char c = s_[p_++];
            if (c == '\n') fail("newline inside a string");
            if (c == '\\') {
                if (p_ >= s_.size()) break;
                const char e = s_[p_++];
                const char* from = "\"\\/bfnrt";
                const char* to = "\"\\/\b\f\n\r\t";
                const char* hit = std::strchr(from, e);
                if (!hit || !e) fail(std::string("unsupported escape '\\") + e + "' in a string");
                c = to[hit - from];
            }
            out += c;
        }
        if (p_ >= s_.size()) fail("unterminated string");
        ++p_;
        return out;
    }

    Json value() {
        skip();
        Json v;
        v.line = line_;
        if (p_ >= s_.size()) fail("unexpected end of file");
        const char c = s_[p_];
        if (c == '{') {
            v.type = Json::Object;
            ++p_;
            if (eat('}')) return v;
            do {
                skip();
                std::string key = string();
                expect(':');
                v.members.emplace_back(std::move(key), value());
            } while (eat(','));
            expect('}');
        } else if (c == '[') {
            v.type = Json::Array;
            ++p_;
            if (eat(']')) return v;
            do v.items.push_back(value());
            while (eat(','));
            expect(']');
        } else if (c == '"') {
            v.type = Json::String;
            v.text = string();
        } else if (word("true")) {
            v.type = Json::Bool;
            v.boolean = true;
        } else if (word("false")) {
            v.type = Json::Bool;
        } else if (word("null")) {
            v.type = Json::Null;
        } else {
            const char* begin = s_.c_str() + p_;
            char* end = nullptr;
            v.number = std::strtod(begin, &end);
            if (end == begin) fail("expected a JSON value at '" + s_.substr(p_, 20) + "'");
            v.type = Json::Number;
            p_ += size_t(end - begin);
        }
        return v;
    }
};

}  // namespace

Json parse_json(const std::string& text, const std::string& where) { return Parser(text, where).document(); }

std::string json_number(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

}  // namespace mlipc
