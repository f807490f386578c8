//! The vocabulary of the generated portal: Russian (and a few neighbouring) names, companies,
//! products, places, streets, lead sources and statuses, e-mail parts, the users' names.

use rand::rngs::SmallRng;
use rand::Rng;

pub(super) fn pick<'a, T>(rng: &mut SmallRng, xs: &'a [T]) -> &'a T {
    &xs[rng.gen_range(0..xs.len())]
}

pub(super) const MALE: &[&str] = &[
    "Александр",
    "Сергей",
    "Дмитрий",
    "Андрей",
    "Алексей",
    "Максим",
    "Евгений",
    "Иван",
    "Михаил",
    "Артём",
    "Никита",
    "Владимир",
    "Юрий",
    "Олег",
    "Пётр",
    "Фёдор",
];
pub(super) const FEMALE: &[&str] = &[
    "Елена",
    "Ольга",
    "Наталья",
    "Татьяна",
    "Анна",
    "Мария",
    "Ирина",
    "Светлана",
    "Екатерина",
    "Юлия",
    "Анастасия",
    "Дарья",
    "Алёна",
    "Софья",
];
pub(super) const SURNAMES: &[&str] = &[
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
];
/// Surnames that do not change with gender.
pub(super) const SURNAMES_FIXED: &[&str] =
    &["Шевченко", "Бондаренко", "Ким", "Цой", "Ли", "Д'Артаньян"];
pub(super) const PATRONYMIC_ROOTS: &[&str] = &[
    "Александров",
    "Сергеев",
    "Иванов",
    "Петров",
    "Викторов",
    "Николаев",
];
pub(super) const COMPANIES: &[&str] = &[
    "ООО \"Ромашка\"",
    "ИП Сидоров А.В.",
    "АО «Северсталь-Инвест»",
    "ООО \"Вектор+\"",
    "ЗАО \"Техно\\Сервис\"",
    "ТОО \"Казахстан Логистик\"",
    "ООО «Мир окон»",
    "ПАО \"Газ & Ко\"",
    "ООО 'Кавычки \"внутри\"'",
    "Coffee Like 🍩",
    "ОДО \"БелТрейд\"",
    "ФОП Коваленко",
];
pub(super) const PRODUCTS: &[&str] = &[
    "пластиковые окна",
    "натяжной потолок",
    "кухня на заказ",
    "ремонт квартиры",
    "кондиционер",
    "доставка грузов",
    "обучение английскому",
    "страхование ОСАГО",
];
/// (city, region/province, country, country code, postal code prefix)
pub(super) const PLACES: &[(&str, &str, &str, &str, &str)] = &[
    ("Москва", "Москва", "Россия", "RU", "101"),
    ("Санкт-Петербург", "Санкт-Петербург", "Россия", "RU", "190"),
    (
        "Екатеринбург",
        "Свердловская область",
        "Россия",
        "RU",
        "620",
    ),
    (
        "Новосибирск",
        "Новосибирская область",
        "Россия",
        "RU",
        "630",
    ),
    ("Казань", "Республика Татарстан", "Россия", "RU", "420"),
    (
        "Нижний Новгород",
        "Нижегородская область",
        "Россия",
        "RU",
        "603",
    ),
    ("Минск", "Минская область", "Беларусь", "BY", "220"),
    ("Алматы", "Алматинская область", "Казахстан", "KZ", "050"),
    ("Киев", "Киевская область", "Украина", "UA", "010"),
];
pub(super) const STREETS: &[&str] = &[
    "ул. Ленина",
    "пр-т Мира",
    "ул. Гагарина",
    "Садовая ул.",
    "ул. 8 Марта",
    "наб. Фонтанки",
];
pub(super) const SOURCES: &[&str] = &[
    "CALL",
    "EMAIL",
    "WEB",
    "ADVERTISING",
    "PARTNER",
    "RECOMMENDATION",
    "WEBFORM",
    "CALLBACK",
    "RC_GENERATOR",
    "STORE",
    "OTHER",
    "1|TELEGRAM",
    "UC_7K2F3A",
];
pub(super) const STATUSES: &[&str] = &["NEW", "IN_PROCESS", "PROCESSED", "JUNK", "CONVERTED"];
pub(super) const EMAIL_USERS: &[&str] = &[
    "ivanov.p",
    "olga.smirnova",
    "info",
    "sale",
    "Dmitry.Kuznetsov",
    "zakaz",
    "mari_99",
    "test",
];
pub(super) const EMAIL_DOMAINS: &[&str] = &[
    "mail.ru",
    "yandex.ru",
    "gmail.com",
    "bk.ru",
    "romashka.ru",
    "inbox.ru",
    "tut.by",
];
pub(super) const USER_NAMES: &[(&str, &str)] = &[
    ("Администратор", "Портала"),
    ("Анна", "Кузнецова"),
    ("Игорь", "Белов"),
    ("Марина", "Соколова"),
    ("Олег", "Тарасов"),
    ("Ксения", "Григорьева"),
    ("Денис", "Жуков"),
    ("Вера", "Медведева"),
    ("Павел", "Комаров"),
    ("Лариса", "Зайцева"),
];
