"""The built-in table of Chinese fixed-line area codes (without the trunk prefix 0).

Used for ``long_distance`` and ``peer_region`` when the called number is a fixed line
(``010 6552 8888``: area code 10, Beijing). Capitals of every province plus the largest other
cities; the operator's segments file may add or override codes (rows whose prefix starts with
``0``, see :mod:`gateway.enrich.segments`), and ``[enrichment] builtin_area_codes = false``
drops this table. Names are pinyin, lower case, like the sample segments file.
"""

from __future__ import annotations

#: area code (no leading 0) -> (province, city)
AREA_CODES: dict[str, tuple[str, str]] = {
    "10": ("beijing", "beijing"),
    "21": ("shanghai", "shanghai"),
    "22": ("tianjin", "tianjin"),
    "23": ("chongqing", "chongqing"),
    "20": ("guangdong", "guangzhou"),
    "755": ("guangdong", "shenzhen"),
    "757": ("guangdong", "foshan"),
    "769": ("guangdong", "dongguan"),
    "24": ("liaoning", "shenyang"),
    "411": ("liaoning", "dalian"),
    "25": ("jiangsu", "nanjing"),
    "512": ("jiangsu", "suzhou"),
    "510": ("jiangsu", "wuxi"),
    "27": ("hubei", "wuhan"),
    "28": ("sichuan", "chengdu"),
    "29": ("shaanxi", "xian"),
    "311": ("hebei", "shijiazhuang"),
    "312": ("hebei", "baoding"),
    "315": ("hebei", "tangshan"),
    "351": ("shanxi", "taiyuan"),
    "371": ("henan", "zhengzhou"),
    "431": ("jilin", "changchun"),
    "451": ("heilongjiang", "harbin"),
    "471": ("neimenggu", "hohhot"),
    "531": ("shandong", "jinan"),
    "532": ("shandong", "qingdao"),
    "551": ("anhui", "hefei"),
    "571": ("zhejiang", "hangzhou"),
    "574": ("zhejiang", "ningbo"),
    "591": ("fujian", "fuzhou"),
    "592": ("fujian", "xiamen"),
    "731": ("hunan", "changsha"),
    "771": ("guangxi", "nanning"),
    "791": ("jiangxi", "nanchang"),
    "851": ("guizhou", "guiyang"),
    "871": ("yunnan", "kunming"),
    "891": ("xizang", "lhasa"),
    "898": ("hainan", "haikou"),
    "931": ("gansu", "lanzhou"),
    "951": ("ningxia", "yinchuan"),
    "971": ("qinghai", "xining"),
    "991": ("xinjiang", "urumqi"),
}
